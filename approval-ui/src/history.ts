// Decisions made in this browser, kept in localStorage per approver so the
// History page can list them with their outcome, time and (for denials) the
// reason the approver typed. The API does not list decided grants (yet).

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
