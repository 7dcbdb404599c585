import { expect, it } from "vitest";
import { nextDelay } from "./poll";

it("backs off exponentially on failures, up to the ceiling", () => {
  expect([0, 1, 2, 3, 4, 10, 50].map((f) => nextDelay(f, 4000, 60000))).toEqual([
    4000, 8000, 16000, 32000, 60000, 60000, 60000,
  ]);
});
