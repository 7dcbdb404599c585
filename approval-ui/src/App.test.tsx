import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { beforeEach, describe, expect, it } from "vitest";
import { App } from "./App";
import { ApprovalApi } from "./api";
import { readHistory, recordDecision } from "./history";
import { begin, detail, fakeFetch, fakePasskeys, problem } from "./test/fakes";

function at(path: string) {
  window.history.replaceState(null, "", path);
}

beforeEach(() => {
  Object.assign(window, { PublicKeyCredential: function PublicKeyCredential() {} });
});

describe("the approval UI", () => {
  it("enrolls from the printed link and drops the token from the address bar", async () => {
    at("/approvals/enroll?approver=dana-fischer#token=tok-123");
    const { fetchImpl, calls } = fakeFetch({
      "GET /session": { csrfToken: "c1", approver: null },
      "POST /enroll/begin": { publicKey: { challenge: "AAEC", user: { id: "BAUG", name: "dana@example.com", displayName: "Dana" } } },
      "POST /enroll/finish": { approver: "dana-fischer", credentialId: "AQID" },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    expect(await screen.findByRole("heading", { name: "Enroll a passkey" })).toBeInTheDocument();
    expect(screen.getByText("dana-fischer")).toBeInTheDocument();
    await userEvent.click(screen.getByRole("button", { name: "Create passkey" }));
    expect(await screen.findByText("Your passkey is ready.")).toBeInTheDocument();
    const beginCall = calls.find((c) => c.path === "/enroll/begin");
    expect(beginCall?.body).toEqual({ approver: "dana-fischer", token: "tok-123" });
    expect(calls.find((c) => c.path === "/enroll/finish")?.body).toMatchObject({
      rawId: "AQID",
      response: { attestationObject: "BAU", clientDataJSON: "Bg" },
    });
    expect(window.location.hash).toBe("");
  });

  it("says plainly when an enrollment link is used up, with the code", async () => {
    at("/approvals/enroll?approver=dana-fischer#token=old");
    const { fetchImpl } = fakeFetch({
      "GET /session": { csrfToken: "c1", approver: null },
      "POST /enroll/begin": () => problem(403, "enrollment_token_invalid", "the enrollment token is not valid"),
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    await userEvent.click(await screen.findByRole("button", { name: "Create passkey" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent(/already used/);
    expect(alert).toHaveTextContent("enrollment_token_invalid");
  });

  it("signs in with the keyboard and lists pending grants, or says there are none", async () => {
    at("/approvals/");
    const { fetchImpl } = fakeFetch({
      "GET /session": { csrfToken: "c1", approver: null },
      "POST /login/begin": { publicKey: { challenge: "AAEC", allowCredentials: [] } },
      "POST /login/finish": { approver: "dana-fischer", csrfToken: "c2" },
      "GET /grants": { grants: [] },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    const name = await screen.findByLabelText("Approver name");
    await userEvent.type(name, "dana-fischer{Enter}");
    expect(await screen.findByTestId("empty")).toHaveTextContent("Nothing to decide");
    expect(screen.getByText("dana-fischer")).toBeInTheDocument();
  });

  it("lists each pending grant with what it asks", async () => {
    at("/approvals/");
    const { fetchImpl } = fakeFetch({
      "GET /session": { csrfToken: "c1", approver: "dana-fischer" },
      "GET /grants": {
        grants: [
          {
            namespace: "agents",
            name: "shop-1",
            agent: "shopping-agent",
            agentOwner: "sam@example.com",
            serviceProvider: "https://shop.example.com",
            reason: "compare prices",
            capabilities: ["Read catalog and everything under it"],
            createdAt: new Date().toISOString(),
            ownsAgent: false,
          },
        ],
      },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    expect(await screen.findByRole("link", { name: /shopping-agent wants access to/ })).toHaveAttribute(
      "href",
      "/approvals/grants/agents/shop-1",
    );
    expect(screen.getByText("Read catalog and everything under it")).toBeInTheDocument();
    expect(screen.getByText("sam@example.com")).toBeInTheDocument();
  });

  it("shows the decisions the server lists in History, with a denial's reason kept in this browser", async () => {
    at("/approvals/history");
    recordDecision("dana-fischer", {
      namespace: "agents",
      name: "orders-1",
      agent: "shopping-agent",
      decision: "Denied",
      at: new Date().toISOString(),
      reason: "orders are out of scope",
    });
    const { fetchImpl } = fakeFetch({
      "GET /session": { csrfToken: "c1", approver: "dana-fischer" },
      "GET /history": {
        decisions: [
          { namespace: "agents", name: "orders-1", agent: "shopping-agent", decision: "Denied", signedAt: new Date().toISOString(), phase: "Denied", revoked: false },
          // Decided elsewhere (another browser): only the server knows it.
          { namespace: "agents", name: "shop-1", agent: "shopping-agent", decision: "Approved", signedAt: new Date(Date.now() - 60_000).toISOString(), phase: "Revoked", revoked: true },
        ],
        truncated: false,
        max: 200,
      },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    const shop = await screen.findByRole("link", { name: "agents/shop-1" });
    expect(shop).toHaveAttribute("href", "/approvals/grants/agents/shop-1");
    const rows = screen.getAllByRole("row").slice(1);
    expect(rows.map((r) => r.getAttribute("data-history"))).toEqual(["agents/orders-1", "agents/shop-1"]);
    expect(rows[0]).toHaveTextContent("orders are out of scope");
    expect(rows[1]).toHaveTextContent("Approved");
    expect(rows[1]).toHaveTextContent("Revoked");
  });

  it("says when the server has no decision of this approver", async () => {
    at("/approvals/history");
    const { fetchImpl } = fakeFetch({
      "GET /session": { csrfToken: "c1", approver: "erin" },
      "GET /history": { decisions: [], truncated: false, max: 200 },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    expect(await screen.findByTestId("history-empty")).toHaveTextContent("not decided any grant");
  });

  it("shows an ended session with a way back in", async () => {
    at("/approvals/");
    const { fetchImpl } = fakeFetch({
      "GET /session": { csrfToken: "c1", approver: "dana-fischer" },
      "GET /grants": () => problem(401, "session_invalid", "no live approval session"),
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    expect(await screen.findByTestId("session-ended")).toHaveTextContent("Your session has ended");
    expect(screen.getByRole("button", { name: "Sign in with passkey" })).toBeInTheDocument();
  });
});

describe("a grant's page", () => {
  const signedIn = { "GET /session": { csrfToken: "c1", approver: "dana-fischer" } };

  it("reads the grant in plain words with the agent key's fingerprint, and approves it", async () => {
    at("/approvals/grants/agents/shop-1");
    let decided = false;
    const passkeys = fakePasskeys();
    const { fetchImpl, calls } = fakeFetch({
      ...signedIn,
      "GET /grants/agents/shop-1": () => ({
        body: detail(decided ? { phase: "Approved", pending: false, approval: { approver: "dana-fischer", decision: "Approved", signedAt: new Date().toISOString() } } : {}),
      }),
      "POST /grants/agents/shop-1/approve/begin": begin(),
      "POST /grants/agents/shop-1/approve/finish": () => {
        decided = true;
        return { body: { decision: "Approved", approver: "dana-fischer" } };
      },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={passkeys} />);
    expect(await screen.findByText("Read catalog and everything under it")).toBeInTheDocument();
    expect(screen.getByText("At most 50.00 EUR per transaction")).toBeInTheDocument();
    expect(screen.getByTestId("fingerprint")).toHaveTextContent("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    await userEvent.click(screen.getByRole("button", { name: "Approve with passkey" }));
    expect(await screen.findByTestId("decided")).toHaveTextContent("Approved.");
    await waitFor(() => expect(screen.getByTestId("phase")).toHaveTextContent("Approved"));
    expect(screen.getByTestId("final")).toHaveTextContent("final");
    expect(screen.queryByRole("button", { name: /Approve/ })).toBeNull();
    // The passkey signed the server's challenge, nothing else.
    expect(Array.from(passkeys.gets[0]!.publicKey!.challenge as Uint8Array)).toEqual([0, 1, 2]);
    expect(calls.find((c) => c.path.endsWith("/approve/finish"))?.headers["X-CSRF-Token"]).toBe("c1");
    expect(readHistory("dana-fischer")[0]).toMatchObject({ name: "shop-1", decision: "Approved" });
  });

  it("needs a reason to deny, and records it", async () => {
    at("/approvals/grants/agents/shop-1");
    const { fetchImpl, calls } = fakeFetch({
      ...signedIn,
      "GET /grants/agents/shop-1": detail(),
      "POST /grants/agents/shop-1/deny/begin": begin(),
      "POST /grants/agents/shop-1/deny/finish": { decision: "Denied", approver: "dana-fischer" },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    const deny = await screen.findByRole("button", { name: "Deny with passkey" });
    await userEvent.click(deny);
    expect(screen.getByLabelText("Reason for denying")).toHaveAttribute("aria-invalid", "true");
    expect(calls.some((c) => c.path.endsWith("/deny/begin"))).toBe(false);
    await userEvent.type(screen.getByLabelText("Reason for denying"), "not this week");
    await userEvent.click(deny);
    expect(await screen.findByTestId("decided")).toHaveTextContent("not this week");
    expect(readHistory("dana-fischer")[0]).toMatchObject({ decision: "Denied", reason: "not this week" });
  });

  it("follows a decided grant until the operator has moved its phase", async () => {
    at("/approvals/grants/agents/shop-1");
    let reads = 0;
    let denied = false;
    const recorded = { approver: "dana-fischer", decision: "Denied", signedAt: new Date().toISOString() };
    const { fetchImpl } = fakeFetch({
      ...signedIn,
      // The decision is recorded at once; the phase follows two reads later.
      "GET /grants/agents/shop-1": () => {
        if (denied) reads += 1;
        if (!denied) return { body: detail() };
        if (reads < 3) return { body: detail({ approval: recorded }) };
        return { body: detail({ phase: "Denied", pending: false, approval: recorded }) };
      },
      "POST /grants/agents/shop-1/deny/begin": begin(),
      "POST /grants/agents/shop-1/deny/finish": () => {
        denied = true;
        return { body: { decision: "Denied", approver: "dana-fischer" } };
      },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    await userEvent.type(await screen.findByLabelText("Reason for denying"), "not this week");
    await userEvent.click(screen.getByRole("button", { name: "Deny with passkey" }));
    await waitFor(() => expect(screen.getByTestId("phase")).toHaveTextContent("Denied"), { timeout: 4000 });
    expect(reads).toBe(3);
  });

  it("does not sign when the ceremony binds another agent key than the page shows", async () => {
    at("/approvals/grants/agents/shop-1");
    const passkeys = fakePasskeys();
    const { fetchImpl } = fakeFetch({
      ...signedIn,
      "GET /grants/agents/shop-1": detail(),
      "POST /grants/agents/shop-1/approve/begin": begin({ agentKeyThumbprint: "another-key" }),
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={passkeys} />);
    await userEvent.click(await screen.findByRole("button", { name: "Approve with passkey" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("approval_challenge_mismatch");
    expect(alert).toHaveTextContent("agent's key changed");
    expect(passkeys.gets).toHaveLength(0);
  });

  it("shows the API's refusal and its code", async () => {
    at("/approvals/grants/agents/shop-1");
    const { fetchImpl } = fakeFetch({
      ...signedIn,
      "GET /grants/agents/shop-1": detail(),
      "POST /grants/agents/shop-1/approve/begin": begin(),
      "POST /grants/agents/shop-1/approve/finish": () =>
        problem(400, "approval_challenge_mismatch", "the grant changed since the ceremony began"),
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    await userEvent.click(await screen.findByRole("button", { name: "Approve with passkey" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The grant changed while you were deciding");
    expect(alert).toHaveTextContent("the grant changed since the ceremony began");
    expect(alert).toHaveTextContent("approval_challenge_mismatch");
  });

  it("revokes an approved grant only after confirmation, then follows it to Revoked", async () => {
    at("/approvals/grants/agents/shop-1");
    let revoked = false;
    let reads = 0;
    const approval = { approver: "dana-fischer", decision: "Approved", signedAt: new Date().toISOString() };
    const approved = { phase: "Approved", pending: false, revocable: true, approval };
    const { fetchImpl, calls } = fakeFetch({
      ...signedIn,
      // spec.revoked is set at once; the controller moves the phase a read later.
      "GET /grants/agents/shop-1": () => {
        if (!revoked) return { body: detail(approved) };
        reads += 1;
        if (reads < 2) return { body: detail({ ...approved, revocable: false, revoked: true }) };
        return { body: detail({ ...approved, phase: "Revoked", revocable: false, revoked: true }) };
      },
      "POST /grants/agents/shop-1/revoke": () => {
        revoked = true;
        return { body: { revoked: true, alreadyRevoked: false, approver: "dana-fischer" } };
      },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    const revoke = await screen.findByRole("button", { name: "Revoke" });
    expect(screen.queryByTestId("final")).toBeNull();

    // The first click only asks; Cancel gives the focus back and sends nothing.
    await userEvent.click(revoke);
    const confirm = screen.getByTestId("revoke-confirm");
    expect(confirm).toHaveTextContent("Revoke agents/shop-1?");
    expect(confirm).toHaveTextContent("cannot be undone");
    expect(screen.getByRole("button", { name: "Yes, revoke" })).toHaveFocus();
    await userEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(screen.queryByTestId("revoke-confirm")).toBeNull();
    expect(screen.getByRole("button", { name: "Revoke" })).toHaveFocus();
    expect(calls.some((c) => c.path.endsWith("/revoke"))).toBe(false);

    await userEvent.click(screen.getByRole("button", { name: "Revoke" }));
    expect(calls.some((c) => c.path.endsWith("/revoke"))).toBe(false);
    await userEvent.click(screen.getByRole("button", { name: "Yes, revoke" }));
    expect(await screen.findByTestId("revoked")).toHaveTextContent("Revoked.");
    await waitFor(() => expect(screen.getByTestId("phase")).toHaveTextContent("Revoked"), { timeout: 4000 });
    const posted = calls.filter((c) => c.path === "/grants/agents/shop-1/revoke");
    expect(posted).toHaveLength(1);
    expect(posted[0]!.method).toBe("POST");
    expect(posted[0]!.headers["X-CSRF-Token"]).toBe("c1");
    expect(reads).toBe(2);
    expect(screen.queryByRole("button", { name: "Revoke" })).toBeNull();
    expect(screen.getByTestId("final")).toHaveTextContent("Revoked");
  });

  it("shows a refused revocation and its code", async () => {
    at("/approvals/grants/agents/shop-1");
    const { fetchImpl } = fakeFetch({
      ...signedIn,
      "GET /grants/agents/shop-1": detail({ phase: "Approved", pending: false, revocable: true }),
      "POST /grants/agents/shop-1/revoke": () => problem(403, "approver_not_authorized", "Kubernetes RBAC does not let user dana approve"),
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    await userEvent.click(await screen.findByRole("button", { name: "Revoke" }));
    await userEvent.click(screen.getByRole("button", { name: "Yes, revoke" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("approver_not_authorized");
  });

  it("shows 1/2 approved, records a first approval without claiming the grant is decided, then tells its approver", async () => {
    at("/approvals/grants/agents/shop-1");
    let approved = false;
    const quorum = (mine: boolean) => ({
      required: 2,
      approvedBy: mine ? ["dana-fischer"] : ["erin"],
      deniedBy: [],
      denial: "Veto",
      progress: "1/2 approved",
      yourDecision: mine ? "Approved" : null,
    });
    const { fetchImpl } = fakeFetch({
      ...signedIn,
      "GET /grants/agents/shop-1": () => ({ body: detail({ quorum: quorum(approved) }) }),
      "POST /grants/agents/shop-1/approve/begin": begin(),
      "POST /grants/agents/shop-1/approve/finish": () => {
        approved = true;
        return { body: { decision: "Approved", approver: "dana-fischer", progress: "1/2 approved", decided: null } };
      },
    });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    // A second approver sees Erin's approval counted and may approve.
    expect(await screen.findByTestId("progress")).toHaveTextContent("1/2 approved (erin) · 1 more approver needed");
    await userEvent.click(screen.getByRole("button", { name: "Approve with passkey" }));
    expect(await screen.findByTestId("decided")).toHaveTextContent("Your approval is recorded (1/2 approved)");
    expect(screen.getByTestId("phase")).toHaveTextContent("Pending");
    // Reloaded: she already approved, so no second approval is offered.
    expect(await screen.findByTestId("already-decided")).toHaveTextContent("You already approved this grant; 1/2 approved");
    expect(screen.queryByRole("button", { name: /with passkey/ })).toBeNull();
  });

  it("offers no decision on a grant the approver's own agent asked for", async () => {
    at("/approvals/grants/agents/shop-1");
    const { fetchImpl } = fakeFetch({ ...signedIn, "GET /grants/agents/shop-1": detail({ ownsAgent: true }) });
    render(<App api={new ApprovalApi(fetchImpl)} passkeys={fakePasskeys()} />);
    expect(await screen.findByTestId("owns-agent")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /with passkey/ })).toBeNull();
  });
});
