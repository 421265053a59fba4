@0xd5177f92a150d3ba;

# roadpilot's message schema. Rules: SI units unless the field name says otherwise
# (steeringAngleDeg); add fields only, never renumber or delete (deprecate instead), so every
# recorded route stays readable. Car structs come from the car.capnp that ships in opendbc.

using Car = import "/car.capnp";

# ---------------------------------------------------------------------------------------------
# CAN

struct CanData {
  address @0 :UInt32;
  dat @1 :Data;
  src @2 :UInt8;           # bus number in the car port's convention; 128+ = our own sent frames echoed back
}

# ---------------------------------------------------------------------------------------------
# onboard state

struct SelfdriveState {
  state @0 :OpenpilotState;
  enabled @1 :Bool;
  active @2 :Bool;
  engageable @3 :Bool;

  alertText1 @4 :Text;
  alertText2 @5 :Text;
  alertStatus @6 :AlertStatus;
  alertSize @7 :AlertSize;
  alertType @8 :Text;       # "<eventName>/<eventType>"; empty when there is no alert
  experimentalMode @9 :Bool;
  personality @10 :LongitudinalPersonality;
  carStateMonoTime @11 :UInt64;  # the carState this state was decided on (controlsd: has it seen the cruise?)
  # what the alert asks of the car's own display and chime (controlsd passes them on in carControl.hudControl)
  alertSound @12 :Car.CarControl.HUDControl.AudibleAlert;
  alertVisual @13 :Car.CarControl.HUDControl.VisualAlert;

  enum OpenpilotState {
    disabled @0;
    preEnabled @1;
    enabled @2;
    softDisabling @3;
    overriding @4;
  }

  enum AlertStatus {
    normal @0;
    userPrompt @1;
    critical @2;
  }

  enum AlertSize {
    none @0;
    small @1;
    mid @2;
    full @3;
  }
}

enum LongitudinalPersonality {
  aggressive @0;
  standard @1;
  relaxed @2;
}

struct OnroadEvent {
  name @0 :Text;
  enable @1 :Bool;
  noEntry @2 :Bool;
  warning @3 :Bool;
  userDisable @4 :Bool;
  softDisable @5 :Bool;
  immediateDisable @6 :Bool;
  preEnable @7 :Bool;
  permanent @8 :Bool;
  overrideLateral @9 :Bool;
  overrideLongitudinal @10 :Bool;
}

struct ControlsState {
  curvature @0 :Float32;            # 1/m, the car's, from its steering angle (drive_helpers.curvature_from_steering)
  desiredCurvature @1 :Float32;     # 1/m, commanded: the lateral plan's target, rate limited (controls_logic)
  lateralError @2 :Float32;         # m/s^2, lateral acceleration error of the torque controller
  lateralP @3 :Float32;
  lateralI @4 :Float32;
  lateralF @5 :Float32;
  lateralSaturated @6 :Bool;
  longitudinalState @7 :LongControlState;
  upAccelCmd @8 :Float32;
  uiAccelCmd @9 :Float32;
  ufAccelCmd @10 :Float32;
  aTarget @11 :Float32;             # m/s^2
  cumLagMs @12 :Float32;
  # logMonoTime of the newest plan and selfdriveState this cycle had: what it used, so a re-run of the
  # recorded route can give the replayed controlsd the same ones (tools/replay/rerun.py)
  longitudinalPlanMonoTime @13 :UInt64;
  selfdriveStateMonoTime @14 :UInt64;
  carStateMonoTime @15 :UInt64;        # the carState this cycle answered (tools/replay/rerun pairs cycles by it)
  liveTorqueParametersMonoTime @16 :UInt64;  # the newest steering estimate this cycle had (0: none yet)
  modelV2MonoTime @17 :UInt64;      # the newest model frame this cycle had (0: none yet): the lateral plan's input

  enum LongControlState {
    off @0;
    pid @1;
    stopping @2;
    starting @3;
  }
}

# ---------------------------------------------------------------------------------------------
# camera and model

struct FrameData {
  frameId @0 :UInt32;
  timestampSof @1 :UInt64;          # ns, monotonic: start of exposure
  timestampEof @2 :UInt64;          # ns, monotonic: end of exposure
  width @3 :UInt32;
  height @4 :UInt32;
  source @5 :Text;                  # "webcam", "video", "sim", "replay"
  sourceOk @6 :Bool;                # false while the source has stopped delivering
  framesDropped @7 :UInt32;         # frames the source skipped since start
  intrinsics @8 :List(Float32);     # fx, fy, cx, cy (px) of the frames as served; empty: not said (older routes)
  distortion @9 :List(Float32);     # OpenCV's k1, k2, p1, p2, k3 of the same camera
  cameraFrom @10 :Text;             # where they come from: "sim", "file camera.json", "fov 60", "assumed fov 65.2"
}

struct EncodeIndex {
  frameId @0 :UInt32;
  segmentNum @1 :Int32;
  segmentId @2 :UInt32;             # frame position inside the segment's video
  timestampSof @3 :UInt64;
  timestampEof @4 :UInt64;
  path @5 :Text;                    # the video file, relative to the route folder
}

struct XYZTData {
  x @0 :List(Float32);
  y @1 :List(Float32);
  z @2 :List(Float32);
  t @3 :List(Float32);
  xStd @4 :List(Float32);
  yStd @5 :List(Float32);
  zStd @6 :List(Float32);
}

struct ModelV2 {
  frameId @0 :UInt32;
  frameIdExtra @1 :UInt32;
  timestampEof @2 :UInt64;
  modelExecutionTime @3 :Float32;   # s
  frameDropPerc @4 :Float32;        # percent of frames dropped over the last seconds
  framesDropped @5 :UInt32;         # total since start

  position @6 :XYZTData;            # planned path in the car frame (x forward, y left), over t
  velocity @7 :XYZTData;
  acceleration @8 :XYZTData;
  orientation @9 :XYZTData;

  laneLines @10 :List(XYZTData);    # 4: left-left, left, right, right-right; y at fixed x
  laneLineProbs @11 :List(Float32);
  laneLineStds @12 :List(Float32);
  roadEdges @13 :List(XYZTData);    # 2: left, right
  roadEdgeStds @14 :List(Float32);

  leads @15 :List(LeadData);
  desiredCurvature @16 :Float32;    # 1/m
  confidence @17 :Float32;          # 0..1

  struct LeadData {
    t @0 :List(Float32);
    x @1 :List(Float32);            # m ahead of the camera
    y @2 :List(Float32);
    v @3 :List(Float32);            # m/s absolute
    a @4 :List(Float32);
    xStd @5 :List(Float32);
    yStd @6 :List(Float32);
    vStd @7 :List(Float32);
    aStd @8 :List(Float32);
    prob @9 :Float32;
    probTime @10 :Float32;
  }
}

struct LongitudinalPlan {
  modelMonoTime @0 :UInt64;
  speeds @1 :List(Float32);
  accels @2 :List(Float32);
  jerks @3 :List(Float32);
  t @4 :List(Float32);
  aTarget @5 :Float32;
  shouldStop @6 :Bool;
  hasLead @7 :Bool;
  fcw @8 :Bool;
  vCruise @9 :Float32;              # m/s, the set speed the plan respects
  solverExecutionTime @10 :Float32;
  # unused: the lateral plan moved to controlsd (from modelV2; controlsState.desiredCurvature is what it commands).
  # Kept so that older routes still read; nothing writes or reads it
  desiredCurvatureDEPRECATED @11 :Float32;
  personality @12 :LongitudinalPersonality;
  allowThrottle @13 :Bool;
  # logMonoTime of the newest carState and selfdriveState this plan had (tools/replay/rerun.py)
  carStateMonoTime @14 :UInt64;
  selfdriveStateMonoTime @15 :UInt64;
  # the lead the plan follows, and who placed it (plannerd: the radar track the model's lead matches, else the model)
  leadSource @16 :LeadSource;
  leadDistance @17 :Float32;        # m, front bumper to the lead's rear
  leadSpeed @18 :Float32;           # m/s
  leadAccel @19 :Float32;           # m/s²
  liveTracksMonoTime @20 :UInt64;   # logMonoTime of the newest radar cycle this plan had (0: none yet)
  liveTorqueParametersMonoTime @21 :UInt64;  # the newest steering estimate this plan had (0: none yet)

  enum LeadSource {
    none @0;
    vision @1;
    radar @2;
  }
}

struct LiveCalibrationData {
  calStatus @0 :Status;
  calPerc @1 :Int8;                 # progress 0..100
  rpyCalib @2 :List(Float32);       # rad, camera roll/pitch/yaw relative to the car
  rpyCalibSpread @3 :List(Float32);
  validBlocks @4 :Int32;
  height @5 :List(Float32);         # m, camera height estimate
  frameId @6 :UInt32;               # the road camera frame this answers (0 when published without a camera)

  enum Status {
    uncalibrated @0;
    calibrated @1;
    invalid @2;
    recalibrating @3;
  }
}

struct LiveTorqueParametersData {
  # torqued: the car's steering response learnt while roadpilot steers (selfdrive/locationd/torque_estimator.py)
  latAccelFactor @0 :Float32;       # m/s² per unit torque: what the torque controller uses
  latAccelOffset @1 :Float32;       # m/s²
  friction @2 :Float32;             # m/s²
  fitValid @3 :Bool;                # the points' own fit is usable (enough of them, within bounds)
  latAccelFactorFit @4 :Float32;    # the fit alone (0 when fitValid is false)
  latAccelOffsetFit @5 :Float32;
  frictionFit @6 :Float32;
  confidence @7 :Float32;           # 0..1: how far the used values moved from the prior towards the fit
  points @8 :UInt32;
  source @9 :Text;                  # "carParams", "stored" (an earlier drive's), "learning", "learned"
  carLatAccelFactor @10 :Float32;   # what carParams says, for comparison
  carStateMonoTime @11 :UInt64;     # the carState this estimate answers (the lockstep simulator waits for it)
  priorStored @12 :Bool;            # the prior is an earlier drive's estimate of this car, not carParams'
}

# ---------------------------------------------------------------------------------------------
# device and processes

struct DeviceState {
  started @0 :Bool;                 # onroad
  cpuUsagePercent @1 :List(Int8);
  cpuTempC @2 :List(Float32);
  maxTempC @3 :Float32;
  memoryUsagePercent @4 :Int8;
  freeSpacePercent @5 :Float32;
  thermalStatus @6 :ThermalStatus;
  loadAvg1 @7 :Float32;
  uptime @8 :Float32;               # s
  storage @9 :List(Storage);        # every place roadpilot writes (hardwared.STORES): params, routes

  struct Storage {
    name @0 :Text;                  # "params", "routes"
    path @1 :Text;
    freeSpacePercent @2 :Float32;
    freeBytes @3 :UInt64;
    writable @4 :Bool;              # the last write probe succeeded
    error @5 :Text;                 # why it did not ("No space left on device"); empty when writable
  }

  enum ThermalStatus {
    green @0;
    yellow @1;
    red @2;
    danger @3;
  }
}

struct LoggerState {
  route @0 :Text;                   # the route being recorded (the run's own name, kept across restarts)
  segment @1 :Int32;
  writing @2 :Bool;                 # false: logging stopped (disk full or unwritable), driving goes on
  error @3 :Text;                   # why it stopped; empty while writing
  writeErrors @4 :UInt32;           # failed writes since start
  bytesWritten @5 :UInt64;          # compressed bytes written since start
  logged @6 :UInt64;                # messages recorded since start
  dropped @7 :UInt64;               # messages not recorded: malformed, on the wrong service, or lost to a full disk
  wrongService @8 :UInt64;          # of those, messages whose which() is not the service they came on
}

struct ManagerState {
  processes @0 :List(ProcessState);
  mode @1 :Text;

  struct ProcessState {
    name @0 :Text;
    pid @1 :Int32;
    running @2 :Bool;
    shouldBeRunning @3 :Bool;
    exitCode @4 :Int32;
    restarts @5 :UInt32;
    cpuPercent @6 :Float32;
  }
}

struct LogMessageData {
  levelnum @0 :Int32;
  name @1 :Text;                    # logger name, usually the process
  msg @2 :Text;                     # the whole record as one JSON object
}

# ---------------------------------------------------------------------------------------------
# simulator ground truth (scoring only; onboard daemons never read it)

struct SimState {
  t @0 :Float64;                    # s since the scenario started
  scenario @1 :Text;
  seed @2 :UInt32;
  x @3 :Float64;                    # m, world frame
  y @4 :Float64;
  yaw @5 :Float32;                  # rad
  vEgo @6 :Float32;
  aEgo @7 :Float32;
  yawRate @8 :Float32;
  steeringAngleDeg @9 :Float32;
  laneIndex @10 :Int8;
  laneCenterOffset @11 :Float32;    # m, left positive
  laneWidth @12 :Float32;
  roadCurvature @13 :Float32;       # 1/m
  leads @14 :List(SimLead);
  collision @15 :Bool;
  laneDeparture @16 :Bool;
  leftLine @17 :List(Float32);      # lateral offsets of the lane lines at sampleDistances
  rightLine @18 :List(Float32);
  sampleDistances @19 :List(Float32);
  wallMonoTime @20 :UInt64;         # ns, the machine's CLOCK_MONOTONIC at this step (logMonoTime is the world's in
                                    # lockstep): how long the drive took in real time
  takeovers @21 :UInt32;            # times the supervising driver took over so far
  lastTakeoverT @22 :Float64;       # s: when it last did
  lastTakeover @23 :Text;           # why it last did ("drifting: ...", "the lead is close: ...")

  struct SimLead {
    dRel @0 :Float32;
    yRel @1 :Float32;
    vLead @2 :Float32;
    aLead @3 :Float32;
    sameLane @4 :Bool;
  }
}

struct AdapterState {
  safetyMode @0 :Text;              # the safety layer's mode and param, "toyota:329"; "silent:0" sends nothing
  car @1 :Text;                     # how far the car was agreed: "identifying", "waiting for the bus to agree",
                                    # "enabled", "dashcam", or "forced mode" (--safety)
  controlsAllowed @2 :Bool;
  relayMalfunction @3 :Bool;        # the car's own copy of a message we send was seen on its bus: latched until
                                    # the mode changes, every frame we send is refused
  txSent @4 :UInt64;                # frames that reached the car since start
  txBlocked @5 :UInt64;             # frames the safety layer refused since start
  rxGarbage @6 :UInt64;             # frames from the bus that CAN cannot carry, dropped since start
}

# ---------------------------------------------------------------------------------------------
# the one envelope every message travels in

struct Event {
  logMonoTime @0 :UInt64;           # ns, monotonic, set when the message is created
  valid @1 :Bool = true;            # false when any input of its producer was not alive/valid/on-frequency

  union {
    can @2 :List(CanData);
    sendcan @3 :List(CanData);
    carState @4 :Car.CarState;
    carControl @5 :Car.CarControl;
    carOutput @6 :Car.CarOutput;
    carParams @7 :Car.CarParams;
    selfdriveState @8 :SelfdriveState;
    controlsState @9 :ControlsState;
    roadCameraState @10 :FrameData;
    modelV2 @11 :ModelV2;
    longitudinalPlan @12 :LongitudinalPlan;
    liveCalibration @13 :LiveCalibrationData;
    deviceState @14 :DeviceState;
    managerState @15 :ManagerState;
    onroadEvents @16 :List(OnroadEvent);
    simState @17 :SimState;
    logMessage @18 :LogMessageData;
    roadEncodeIdx @19 :EncodeIndex;
    liveTracks @20 :Car.RadarData;  # card: the radar's tracks (opendbc's RadarInterface), 20 Hz
    loggerState @21 :LoggerState;   # loggerd: what is being recorded, and whether it can be, 1 Hz
    adapterState @22 :AdapterState; # canbridged: the CAN adapter's safety layer, 2 Hz
    liveTorqueParameters @23 :LiveTorqueParametersData;  # torqued: the car's learnt steering response, 4 Hz
  }
}
