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

__all__ = ["car", "log"]
