// Number, time and name formatting shared by the views.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 1536 → "1.5 KiB"; exact below 1 KiB. */
export function bytes(n) {
  if (n == null) return "–";
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) { value /= 1024; unit++; }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${UNITS[unit]}`;
}

/** A byte rate per second, "–" when idle or unknown. */
export function rate(perSecond) {
  if (perSecond == null || !Number.isFinite(perSecond) || perSecond < 0.5) return "–";
  return `${bytes(Math.round(perSecond))}/s`;
}

/** Seconds as "42s", "3m 05s", "2h 07m", "3d 04h". */
export function age(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${String(Math.floor(s / 3600) % 24).padStart(2, "0")}h`;
}

/** An exact byte count with thin grouping, for offsets. */
export function exact(n) {
  return n == null ? "–" : Number(n).toLocaleString("en-US");
}

/** "12:03:44" local time. */
export function clock(date = new Date()) {
  return date.toLocaleTimeString("en-GB", { hour12: false });
}

export const DIRECTIONS = ["client_to_server", "server_to_client"];

/** Short labels for directions. */
export function direction(name) {
  return { client_to_server: "client → server", server_to_client: "server → client", both: "both" }[name] || name;
}

/** Whether a hop or split with this `direction` covers `dir`. */
export function covers(selection, dir) {
  return selection === "both" || selection === dir;
}

/** Numeric part of an id like "s12", for ordering. */
export function idNumber(id) {
  return Number(String(id).replace(/^\D+/, "")) || 0;
}
