"""The one table of services: rate, logged or not, qlog decimation, latched or not.

Rates are contracts: SubMaster checks them (`freq_ok`), loggerd logs what is marked logged, and the
qlog keeps one message in `decimation` (None: not in the qlog). A latched service says what holds for the
whole drive and comes rarely (carParams: at start, then every 50 s): loggerd keeps its newest message and
writes it again at the start of every segment, so each segment says it on its own (route_writer.py).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    frequency: float        # Hz the producer promises; 0 = on change only (no rate check)
    should_log: bool        # recorded in rlog by loggerd
    decimation: int | None  # keep 1 in N in the qlog; None = not in the qlog
    latched: bool = False   # its newest message starts every segment (rlog, and qlog when in it)


SERVICES: dict[str, Service] = {
    # name:              Service(Hz, logged, qlog 1-in-N[, latched])
    "can":               Service(100.0, True, 100),
    "sendcan":           Service(100.0, True, 100),
    "carState":          Service(100.0, True, 10),
    "carControl":        Service(100.0, True, 10),
    "carOutput":         Service(100.0, True, 10),
    "carParams":         Service(0.02, True, 1, latched=True),
    "selfdriveState":    Service(100.0, True, 10),
    "controlsState":     Service(100.0, True, 10),
    "roadCameraState":   Service(20.0, True, 20),
    "modelV2":           Service(20.0, True, 20),
    "longitudinalPlan":  Service(20.0, True, 10),
    "liveCalibration":   Service(20.0, True, 5),  # one per camera frame (4 Hz without a camera)
    "deviceState":       Service(2.0, True, 1),
    "managerState":      Service(2.0, True, 1),
    "onroadEvents":      Service(1.0, True, 1),
    "simState":          Service(20.0, True, 10),
    "logMessage":        Service(0.0, True, None),
    "roadEncodeIdx":     Service(20.0, True, 1),
    "liveTracks":        Service(20.0, True, 20),
    "loggerState":       Service(1.0, True, 1),
    "adapterState":      Service(2.0, True, 1),
    "liveTorqueParameters": Service(100.0, True, 25),  # one per carState
}

# Fixed TCP port per service for remote readers (a viewer on another machine). Order-stable:
# new services are appended to the table above, so existing ports never move.
TCP_PORT_BASE = 48100
TCP_PORTS: dict[str, int] = {name: TCP_PORT_BASE + i for i, name in enumerate(SERVICES)}
