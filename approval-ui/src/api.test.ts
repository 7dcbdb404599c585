import { describe, expect, it } from "vitest";
import { ApiError, ApprovalApi } from "./api";
import { fakeFetch, problem } from "./test/fakes";

describe("ApprovalApi", () => {
  it("sends the session's CSRF token on POSTs and takes the new one after login", async () => {
    const { fetchImpl, calls } = fakeFetch({
      "GET /session": { csrfToken: "anon", approver: null },
      "POST /login/begin": { publicKey: { challenge: "AA" } },
      "POST /login/finish": { approver: "dana", csrfToken: "logged-in" },
      "POST /grants/agents/g%2F1/approve/begin": { publicKey: { challenge: "AA" } },
    });
    const api = new ApprovalApi(fetchImpl);
    await api.loginBegin("dana");
    await api.loginFinish({ id: "x" });
    await api.decideBegin("agents", "g/1", "approve");
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      "GET /session",
      "POST /login/begin",
      "POST /login/finish",
      "POST /grants/agents/g%2F1/approve/begin",
    ]);
    expect(calls[1]?.headers["X-CSRF-Token"]).toBe("anon");
    expect(calls[1]?.body).toEqual({ approver: "dana" });
    expect(calls[3]?.headers["X-CSRF-Token"]).toBe("logged-in");
    expect(calls[0]?.headers["X-CSRF-Token"]).toBeUndefined();
  });

  it("turns problem+json refusals into ApiErrors with the stable code", async () => {
    const { fetchImpl } = fakeFetch({
      "GET /grants": () => problem(401, "session_invalid", "no live approval session"),
    });
    const error = await new ApprovalApi(fetchImpl).pending().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ code: "session_invalid", status: 401, message: "no live approval session" });
  });

  it("names a network failure and a body that is not a problem", async () => {
    const down = new ApprovalApi((async () => {
      throw new TypeError("Failed to fetch");
    }) as typeof fetch);
    await expect(down.session()).rejects.toMatchObject({ code: "network_unavailable", status: 0 });
    const odd = new ApprovalApi((async () => new Response("<html>gateway</html>", { status: 502 })) as typeof fetch);
    await expect(odd.pending()).rejects.toMatchObject({ code: "http_502", status: 502 });
  });
});
