/* Ego vehicle dynamics for the simulator: a dynamic bicycle model that blends into the kinematic one at
 * low speed, an EPS (torque -> steering rate, the driver's torque adds to the motor's), a powertrain and
 * brakes with first-order lags and limits, drag, rolling resistance and road grade.
 *
 * tools/sim/lib/dynamics.py holds a pure-Python copy of vd_step (step_python) that the tests hold this
 * file to within 1e-9; change both together. Units are SI; the steering angle is the steering WHEEL's. */
#ifndef VEHICLE_DYNAMICS_H
#define VEHICLE_DYNAMICS_H

typedef struct {
  double mass;                /* kg, with driver */
  double yaw_inertia;         /* kg m^2 */
  double wheelbase;           /* m */
  double cg_to_front;         /* m, front axle to centre of gravity */
  double cornering_front;     /* N/rad, front axle */
  double cornering_rear;      /* N/rad, rear axle */
  double steer_ratio;         /* steering wheel angle / road wheel angle */
  double max_steer_angle;     /* rad, steering wheel */
  double max_steer_rate;      /* rad/s, steering wheel */
  double eps_rate_gain;       /* rad/s of steering wheel rate per unit of torque imbalance */
  double eps_tau;             /* s, lag of the steering rate */
  double eps_lat_accel_full;  /* m/s^2 that full EPS torque holds against the tyres' aligning torque */
  double eps_center_angle;    /* rad, steering wheel angle that full torque holds against the centring springs */
  double driver_torque_full;  /* Nm of driver torque that equals full EPS torque */
  double drive_accel_max;     /* m/s^2, traction limit of the powertrain */
  double drive_power_max;     /* W */
  double drive_tau;           /* s */
  double brake_decel_max;     /* m/s^2 */
  double brake_tau;           /* s */
  double drag_area;           /* m^2, Cd * A */
  double air_density;         /* kg/m^3 */
  double rolling_resistance;  /* coefficient */
  double v_kinematic;         /* m/s, below this the lateral motion is purely kinematic */
  double v_dynamic;           /* m/s, above this purely dynamic; blended in between */
  double max_substep;         /* s */
  double eps_friction;        /* torque (normalised) the steering's friction holds before it moves; 0: none */
} vd_params;

typedef struct {
  double x, y, yaw;           /* m, m, rad (world frame of the CG; yaw is continuous, not wrapped) */
  double vx, vy, yaw_rate;    /* m/s (body frame, vx >= 0), rad/s */
  double steer_angle;         /* rad, steering wheel, left positive */
  double steer_rate;          /* rad/s */
  double accel;               /* m/s^2, longitudinal, last substep */
  double lat_accel;           /* m/s^2, vx * yaw_rate */
  double drive_force;         /* N, powertrain at the wheels (after its lag) */
  double brake_force;         /* N, brakes (after their lag) */
  double eps_torque;          /* applied EPS torque, normalised to [-1, 1] */
  double distance;            /* m travelled */
} vd_state;

typedef struct {
  double eps_torque;          /* EPS motor torque command, normalised [-1, 1] (clipped) */
  double driver_torque;       /* Nm, the driver's hands on the wheel, left positive */
  double accel_cmd;           /* m/s^2, net acceleration asked of powertrain + brakes (used when accel_active) */
  double accel_active;        /* 0 or 1: longitudinal control active */
  double gas;                 /* driver's pedal, 0..1 of the available drive force */
  double brake;               /* driver's pedal, 0..1 of brake_decel_max; pressed, it cuts the drive force */
  double grade;               /* rise/run of the road under the car, positive uphill */
} vd_inputs;

#define VD_OK 0
#define VD_E_DT (-1)

/* Advances *s by dt (split into equal substeps of at most p->max_substep). Non-finite inputs count as 0.
 * Returns VD_E_DT and leaves *s alone when dt is not a positive finite number of at most 1 s. */
int vd_step(const vd_params *p, vd_state *s, const vd_inputs *in, double dt);

/* n steps of dt with inputs in[0..n-1]; writes the state after each step to out[0..n-1] (when out is not
 * NULL). Returns VD_OK or the first error. */
int vd_run(const vd_params *p, vd_state *s, const vd_inputs *in, int n, double dt, vd_state *out);

#endif
