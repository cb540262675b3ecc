// The ticking clock for countdowns and "seen 5 s ago", shared by every screen that shows one.
import { useEffect, useState } from 'react';

/** The current time, updated every `ms` while mounted and `active` (otherwise frozen at its last value). */
export function useNow(ms = 1000, active = true): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const t = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(t);
  }, [ms, active]);
  return now;
}
