import { describe, expect, it } from "vitest";
import type { Quorum } from "./api";
import { alreadyDecided, partialOutcome, progressLine, remaining, showsProgress } from "./quorum";

const quorum = (over: Partial<Quorum> = {}): Quorum => ({
  required: 2,
  approvedBy: [],
  deniedBy: [],
  denial: "Veto",
  progress: "0/2 approved",
  yourDecision: null,
  ...over,
});

describe("N-of-M progress", () => {
  it("is hidden for an ordinary one-approver grant", () => {
    expect(showsProgress(quorum({ required: 1, progress: "0/1 approved" }))).toBe(false);
    expect(showsProgress(undefined)).toBe(false);
  });

  it("shows 1/2 approved, who approved and how many more are needed", () => {
    const q = quorum({ approvedBy: ["dana"], progress: "1/2 approved" });
    expect(showsProgress(q)).toBe(true);
    expect(remaining(q)).toBe(1);
    expect(progressLine(q)).toBe("1/2 approved (dana) · 1 more approver needed");
    expect(progressLine(quorum({ required: 3, progress: "0/3 approved" }))).toBe(
      "0/3 approved · 3 more approvers needed",
    );
  });

  it("tells the first approver they already approved, and nobody else", () => {
    const q = quorum({ approvedBy: ["dana"], progress: "1/2 approved", yourDecision: "Approved" });
    expect(alreadyDecided(q)).toBe(
      "You already approved this grant; 1/2 approved. Each approver counts once: another approver must decide.",
    );
    expect(alreadyDecided({ ...q, yourDecision: null })).toBeNull();
  });

  it("says an approval below the quorum does not unlock the grant yet", () => {
    expect(partialOutcome("1/2 approved")).toContain("(1/2 approved)");
    expect(partialOutcome("1/2 approved")).toContain("needs another approver");
  });
});
