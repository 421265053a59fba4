"""How the car was identified, said in one line for the user (the CLI, the UI). No opendbc import: the UI uses it."""

VIN_UNKNOWN = "0" * 17  # opendbc's "no VIN answered" (opendbc.car.vin.VIN_UNKNOWN)
HOW = {"fw": "identified by firmware query", "can": "identified by CAN fingerprint", "fixed": "forced with --car"}


def describe(CP) -> str:
    """How the car was identified, in one line for the user (CLI, UI)."""
    if CP.carFingerprint == "MOCK":
        return "car not recognised: dashcam mode, nothing is sent to the car"
    how = HOW.get(str(CP.fingerprintSource), str(CP.fingerprintSource))
    extra = []
    if len(CP.carFw):
        extra.append(f"{len({(f.address, f.subAddress) for f in CP.carFw})} ECUs answered")
    if CP.carVin and CP.carVin != VIN_UNKNOWN:
        extra.append(f"VIN {CP.carVin}")
    if CP.fuzzyFingerprint:
        extra.append("fuzzy match")
    dashcam = "; dashcam only (opendbc does not control this car): nothing is sent" if CP.dashcamOnly else ""
    return f"car {CP.carFingerprint}, {how}" + (f" ({', '.join(extra)})" if extra else "") + dashcam
