import type { Quorum } from "./api";

/**
 * N-of-M approvals in words. A grant that needs one approver (the default)
 * shows no progress at all; one that needs several shows "1/2 approved" on
 * the list and the grant page, and tells an approver who already decided
 * that another approver must now.
 */

/** Whether `quorum` is worth showing: several approvers needed, or a decision already recorded alongside. */
export function showsProgress(quorum: Quorum | undefined | null): quorum is Quorum {
  return !!quorum && (quorum.required > 1 || quorum.approvedBy.length + quorum.deniedBy.length > 1);
}

/** How many more distinct approvals the grant needs. */
export function remaining(quorum: Quorum): number {
  return Math.max(0, quorum.required - quorum.approvedBy.length);
}

/** The progress line, e.g. "1/2 approved (Dana) · 1 more approver needed". */
export function progressLine(quorum: Quorum): string {
  const who = quorum.approvedBy.length > 0 ? ` (${quorum.approvedBy.join(", ")})` : "";
  const more = remaining(quorum);
  const rest = more > 0 ? ` · ${more} more approver${more === 1 ? "" : "s"} needed` : "";
  return `${quorum.progress}${who}${rest}`;
}

/** What to tell an approver who already decided this grant, or null. */
export function alreadyDecided(quorum: Quorum | undefined | null): string | null {
  if (!quorum?.yourDecision) return null;
  const verb = quorum.yourDecision === "Approved" ? "approved" : "denied";
  return `You already ${verb} this grant; ${quorum.progress}. Each approver counts once: another approver must decide.`;
}

/** The outcome of an approval that did not decide the grant yet. */
export function partialOutcome(progress: string | undefined): string {
  return `Your approval is recorded (${progress ?? "more approvals needed"}). The grant needs another approver before the agent can get tokens.`;
}
