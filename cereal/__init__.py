"""roadpilot's message schemas: `log` (our Event union) and `car` (opendbc's car structs).

pycapnp aborts the whole process when one schema file is parsed twice under different names, so
both schemas are loaded here exactly once with the same import path, and opendbc's
`opendbc.car.structs` (which tries `from cereal import car` first) reuses our `car` module: both
sides then share one CarState type.
"""

import os

import capnp
import opendbc  # the top-level package only: opendbc.car would load car.capnp itself

capnp.remove_import_hook()

CEREAL_DIR = os.path.dirname(os.path.abspath(__file__))
CAR_SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(opendbc.__file__)), "car")

car = capnp.load(os.path.join(CAR_SCHEMA_DIR, "car.capnp"), imports=[CAR_SCHEMA_DIR])
log = capnp.load(os.path.join(CEREAL_DIR, "log.capnp"), imports=[CAR_SCHEMA_DIR])

# the actuator values a carControl carries as floats: each must be finite before it reaches a car (controlsd checks
# what it sends, card what it receives), read off the schema so a new field is checked too
ACTUATOR_FLOATS = tuple(f for f in car.CarControl.Actuators.schema.fieldnames
                        if car.CarControl.Actuators.schema.fields[f].proto.slot.type.which() in ("float32", "float64"))

__all__ = ["car", "log", "ACTUATOR_FLOATS"]
