// Decisions made in this browser, kept in localStorage per approver. The
// History page lists decisions from the server (GET history), which is the
// truth; the recorded approval carries no reason for a denial, so this
// browser's copy of the reason the approver typed is shown beside it.

export interface DecisionEntry {
  namespace: string;
  name: string;
  agent: string;
  decision: "Approved" | "Denied";
  at: string;
  reason?: string;
}

const KEY = (approver: string) => `agentauth.history.${approver}`;
const MAX = 200;

export function readHistory(approver: string, storage: Storage = localStorage): DecisionEntry[] {
  try {
    const parsed: unknown = JSON.parse(storage.getItem(KEY(approver)) ?? "[]");
    return Array.isArray(parsed) ? (parsed as DecisionEntry[]) : [];
  } catch {
    return [];
  }
}

export function recordDecision(
  approver: string,
  entry: DecisionEntry,
  storage: Storage = localStorage,
): void {
  const list = [entry, ...readHistory(approver, storage)].slice(0, MAX);
  try {
    storage.setItem(KEY(approver), JSON.stringify(list));
  } catch {
    // A full or disabled storage only loses the local history.
  }
}

/** The reason this browser kept for a denial of `namespace/name`, if any. */
export function denialReason(local: DecisionEntry[], namespace: string, name: string): string | undefined {
  return local.find((e) => e.namespace === namespace && e.name === name && e.decision === "Denied")?.reason;
}
