// format.ts — numbers and durations for people. Pure functions; see format.test.ts.

const BYTE_UNITS = ["B", "kB", "MB", "GB", "TB"];

/** 1234 → "1.2 kB" (decimal units, like most network tools). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "—";
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < BYTE_UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

/** Bytes per second → "1.2 MB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Seconds → "5 s", "3 min", "2 h 5 min", "3 d". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return m === 0 ? `${Math.floor(s / 3600)} h` : `${Math.floor(s / 3600)} h ${m} min`;
  }
  return `${Math.floor(s / 86400)} d`;
}

/** A Unix time (seconds) relative to `nowSecs`: "12 s ago"; "never" for null. */
export function formatAgo(unixSecs: number | null, nowSecs: number): string {
  if (unixSecs === null) return "never";
  return `${formatDuration(nowSecs - unixSecs)} ago`;
}

/** Milliseconds since the epoch → "15:04:05" in local time. */
export function formatClock(unixMs: number): string {
  const d = new Date(unixMs);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
