/* See vehicle_dynamics.h. Each substep computes every rate from the state at its start (explicit Euler),
 * except the position, which moves with the new velocities (semi-implicit: steadier at large steps). */
#include "tools/sim/lib/vehicle_dynamics.h"

#include <math.h>
#include <stddef.h>

#define GRAVITY 9.81

static double clip(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }
static double finite_or_zero(double x) { return isfinite(x) ? x : 0.0; }

static void substep(const vd_params *p, vd_state *s, const vd_inputs *in, double h) {
  const double m = p->mass, wb = p->wheelbase, lf = p->cg_to_front, lr = wb - lf;
  const double cf = p->cornering_front, cr = p->cornering_rear;
  const double v = s->vx;
  const double delta = s->steer_angle / p->steer_ratio;

  /* --- longitudinal: desired forces, lags, resistances; no reversing */
  const double grade = finite_or_zero(in->grade);
  const double norm = sqrt(1.0 + grade * grade);
  const double f_grade = m * GRAVITY * grade / norm;
  const double f_roll = p->rolling_resistance * m * GRAVITY / norm;
  const double f_drag = 0.5 * p->air_density * p->drag_area * v * v;
  const double drive_max = fmin(m * p->drive_accel_max, p->drive_power_max / fmax(v, 1.0));
  double drive_des = 0.0, brake_des = 0.0;
  if (finite_or_zero(in->accel_active) != 0.0) {
    const double f = m * finite_or_zero(in->accel_cmd) + f_drag + f_grade + (v > 0.0 ? f_roll : 0.0);
    if (f >= 0.0) drive_des = f; else brake_des = -f;
  }
  const double brake = clip(finite_or_zero(in->brake), 0.0, 1.0);
  drive_des = fmax(drive_des, clip(finite_or_zero(in->gas), 0.0, 1.0) * drive_max);
  brake_des = fmax(brake_des, brake * m * p->brake_decel_max);
  drive_des = brake > 0.0 ? 0.0 : fmin(drive_des, drive_max);  /* brake override: the pedal cuts the drive */
  brake_des = fmin(brake_des, m * p->brake_decel_max);
  s->drive_force += (drive_des - s->drive_force) * fmin(1.0, h / p->drive_tau);
  s->brake_force += (brake_des - s->brake_force) * fmin(1.0, h / p->brake_tau);
  double a;
  if (v > 0.0) {
    a = (s->drive_force - s->brake_force - f_drag - f_roll - f_grade) / m;
  } else {  /* standing: brakes and rolling resistance hold until the push beats them */
    const double push = s->drive_force - f_grade, hold = s->brake_force + f_roll;
    a = push > hold ? (push - hold) / m : 0.0;
  }
  double v_new = v + a * h;
  if (v_new < 0.0) {
    v_new = 0.0;
    a = -v / h;
  }

  /* --- lateral: dynamic bicycle (linear tyres) blended with the kinematic model at low speed */
  const double tan_d = tan(delta);
  const double w = clip((v - p->v_kinematic) / (p->v_dynamic - p->v_kinematic), 0.0, 1.0);
  const double ve = fmax(v, p->v_kinematic);
  const double alpha_f = delta - (s->vy + lf * s->yaw_rate) / ve;
  const double alpha_r = -(s->vy - lr * s->yaw_rate) / ve;
  const double fyf = cf * alpha_f, fyr = cr * alpha_r;
  const double cos_d = cos(delta);
  const double dvy = (fyf * cos_d + fyr) / m - ve * s->yaw_rate;
  const double dr = (lf * fyf * cos_d - lr * fyr) / p->yaw_inertia;
  const double vy_dyn = s->vy + dvy * h, r_dyn = s->yaw_rate + dr * h;
  const double vy_kin = v_new * lr * tan_d / wb, r_kin = v_new * tan_d / wb;
  const double vy = w * vy_dyn + (1.0 - w) * vy_kin;
  const double r = w * r_dyn + (1.0 - w) * r_kin;

  /* --- EPS: the torque imbalance sets the steering rate; steady state: torque ~ lateral acceleration */
  const double k_us = m * (lr / cf - lf / cr) / wb;
  const double a_ss = v * v * delta / fmax(wb + k_us * v * v, 0.1 * wb);
  const double eps = clip(finite_or_zero(in->eps_torque), -1.0, 1.0);
  const double u = eps + finite_or_zero(in->driver_torque) / p->driver_torque_full;
  const double resist = a_ss / p->eps_lat_accel_full + s->steer_angle / p->eps_center_angle;
  /* friction (rack, column): the part of the imbalance it holds does not steer */
  const double imbalance = copysign(fmax(fabs(u - resist) - p->eps_friction, 0.0), u - resist);
  const double rate_target = clip(p->eps_rate_gain * imbalance, -p->max_steer_rate, p->max_steer_rate);
  double steer_rate = s->steer_rate + (rate_target - s->steer_rate) * fmin(1.0, h / p->eps_tau);
  double steer_angle = s->steer_angle + steer_rate * h;
  if (steer_angle > p->max_steer_angle) {
    steer_angle = p->max_steer_angle;
    steer_rate = fmin(steer_rate, 0.0);
  } else if (steer_angle < -p->max_steer_angle) {
    steer_angle = -p->max_steer_angle;
    steer_rate = fmax(steer_rate, 0.0);
  }

  /* --- pose, with the new velocities */
  const double c = cos(s->yaw), sn = sin(s->yaw);
  s->x += (v_new * c - vy * sn) * h;
  s->y += (v_new * sn + vy * c) * h;
  s->yaw += r * h;
  s->vx = v_new;
  s->vy = vy;
  s->yaw_rate = r;
  s->steer_angle = steer_angle;
  s->steer_rate = steer_rate;
  s->accel = a;
  s->lat_accel = v_new * r;
  s->eps_torque = eps;
  s->distance += v_new * h;
}

int vd_step(const vd_params *p, vd_state *s, const vd_inputs *in, double dt) {
  if (!(dt > 0.0 && dt <= 1.0)) return VD_E_DT;  /* also false for NaN */
  const int n = (int)ceil(dt / p->max_substep - 1e-9);
  const double h = dt / n;
  for (int i = 0; i < n; i++) substep(p, s, in, h);
  return VD_OK;
}

int vd_run(const vd_params *p, vd_state *s, const vd_inputs *in, int n, double dt, vd_state *out) {
  for (int i = 0; i < n; i++) {
    const int rc = vd_step(p, s, &in[i], dt);
    if (rc != VD_OK) return rc;
    if (out != NULL) out[i] = *s;
  }
  return VD_OK;
}
