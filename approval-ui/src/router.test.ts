import { expect, it } from "vitest";
import { grantPath, parse } from "./router";

it("parses the UI's routes, the enrollment token from the fragment only", () => {
  expect(parse("/approvals/", "", "")).toEqual({ page: "pending" });
  expect(parse("/approvals", "", "")).toEqual({ page: "pending" });
  expect(parse("/approvals/history", "", "")).toEqual({ page: "history" });
  expect(parse("/approvals/grants/agents/shop-1", "", "")).toEqual({ page: "grant", namespace: "agents", name: "shop-1" });
  expect(parse("/approvals/enroll", "?approver=dana-fischer", "#token=abc_-1")).toEqual({
    page: "enroll",
    approver: "dana-fischer",
    token: "abc_-1",
  });
  expect(parse("/approvals/enroll", "?approver=dana&token=leaked", "")).toMatchObject({ token: "" });
  expect(parse("/approvals/nope/x", "", "")).toEqual({ page: "notFound" });
  expect(grantPath("a b", "c/d")).toBe("/approvals/grants/a%20b/c%2Fd");
});
