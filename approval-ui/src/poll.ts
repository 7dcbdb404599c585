import { useCallback, useEffect, useRef, useState } from "react";
import { ApiError } from "./api";
import { useServices } from "./context";

export interface PollState<T> {
  data: T | null;
  error: ApiError | null;
  updatedAt: Date | null;
}

/** The delay before the next poll: `base` while answers come, doubling on
 * each failure in a row up to `max`. */
export function nextDelay(failures: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.min(failures, 10));
}

/**
 * Polls `load` every `base` ms (paused while the tab is hidden), backing off
 * on failure. `onError` sees every failure (e.g. to end the session).
 */
export function usePoll<T>(
  load: () => Promise<T>,
  onError: (e: ApiError) => boolean,
  { base = 4000, max = 60000 }: { base?: number; max?: number } = {},
): PollState<T> & { refresh: () => void } {
  const [state, setState] = useState<PollState<T>>({ data: null, error: null, updatedAt: null });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  const errorRef = useRef(onError);
  loadRef.current = load;
  errorRef.current = onError;

  useEffect(() => {
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    const run = async () => {
      if (!live) return;
      if (typeof document !== "undefined" && document.hidden) {
        timer = setTimeout(() => void run(), base);
        return;
      }
      try {
        const data = await loadRef.current();
        if (!live) return;
        failures = 0;
        setState({ data, error: null, updatedAt: new Date() });
      } catch (e) {
        if (!live) return;
        const error = e instanceof ApiError ? e : new ApiError("ui_error", 0, String(e));
        if (errorRef.current(error)) return; // handled: stop polling
        failures += 1;
        setState((s) => ({ ...s, error }));
      }
      if (live) timer = setTimeout(() => void run(), nextDelay(failures, base, max));
    };
    void run();
    return () => {
      live = false;
      if (timer) clearTimeout(timer);
    };
  }, [base, max, tick]);

  return { ...state, refresh: () => setTick((t) => t + 1) };
}

/**
 * `usePoll` for a signed-in page: an ended session (`session_invalid`)
 * sends the person back to sign in and stops the polling.
 */
export function useSessionPoll<T>(
  load: () => Promise<T>,
  options?: { base?: number; max?: number },
): PollState<T> & { refresh: () => void } {
  const { sessionEnded } = useServices();
  const onError = useCallback(
    (e: ApiError) => {
      if (e.code === "session_invalid") {
        sessionEnded();
        return true;
      }
      return false;
    },
    [sessionEnded],
  );
  return usePoll(load, onError, options);
}
