import { useCallback, useEffect, useLayoutEffect, useRef, useState, type FormEvent } from "react";
import { ApiError, CLIENT_CODES, type Decision, type DecisionOptions, type GrantDetail } from "../api";
import { asApiError } from "../App";
import { useServices } from "../context";
import { recordDecision } from "../history";
import { BASE } from "../router";
import { Link } from "../components/Link";
import { Problem } from "../components/Problem";
import { Time, relative } from "../components/Time";
import { assertionJSON, gesture, requestOptions } from "../webauthn";
import { alreadyDecided, partialOutcome, progressLine, showsProgress } from "../quorum";

/**
 * Refuses to sign when the ceremony binds other values than the page shows:
 * the passkey must sign exactly what the person read.
 */
export function bindsWhatIsShown(shown: GrantDetail, options: DecisionOptions): string | null {
  const g = options.grant;
  if (shown.uid !== g.uid) return "it was deleted and created again";
  if (shown.generation !== g.generation) return "its request was edited";
  if (shown.agentKeyThumbprint != null && g.agentKeyThumbprint != null && shown.agentKeyThumbprint !== g.agentKeyThumbprint)
    return "its agent's key changed";
  if (shown.envelopeDigest != null && g.envelopeDigest != null && shown.envelopeDigest !== g.envelopeDigest)
    return "its envelope's limits changed";
  return null;
}

/** How often, and how many times, the page reads a decided or revoked grant
 * until the operator has moved its phase (10 s in all). */
const SETTLE_INTERVAL_MS = 500;
const SETTLE_TRIES = 20;

/** Phases a grant never leaves. */
const FINAL_PHASES = new Set(["Denied", "Revoked", "Expired"]);

type Outcome =
  | { kind: "decided"; decision: Decision }
  | { kind: "partial"; progress?: string }
  | { kind: "revoked"; already: boolean }
  | { kind: "error"; error: ApiError }
  | null;

/** One grant in plain words, with Approve and Deny; an approved one with Revoke. */
export function GrantPage({ namespace, name }: { namespace: string; name: string }) {
  const { api, passkeys, approver, sessionEnded } = useServices();
  const [grant, setGrant] = useState<GrantDetail | null>(null);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState<Decision | null>(null);
  const [outcome, setOutcome] = useState<Outcome>(null);
  const [reason, setReason] = useState("");
  const [reasonMissing, setReasonMissing] = useState(false);
  const [confirmingRevoke, setConfirmingRevoke] = useState(false);
  const [revoking, setRevoking] = useState(false);
  const outcomeRef = useRef<HTMLDivElement>(null);
  const revokeRef = useRef<HTMLButtonElement>(null);
  const confirmRevokeRef = useRef<HTMLButtonElement>(null);
  const confirmShown = useRef(false);

  const fail = useCallback(
    (e: unknown): ApiError => {
      const error = asApiError(e);
      if (error.code === "session_invalid") sessionEnded();
      return error;
    },
    [sessionEnded],
  );

  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);

  const reload = useCallback(async (): Promise<GrantDetail | null> => {
    try {
      const current = await api.grant(namespace, name);
      if (!mounted.current) return null;
      setGrant(current);
      setLoadError(null);
      return current;
    } catch (e) {
      if (mounted.current) setLoadError(fail(e));
      return null;
    }
  }, [api, namespace, name, fail]);

  /** Reads the grant until its phase is `phase` (or a final phase it can no
   * longer leave): the API records a decision or revocation at once, the
   * operator moves the phase a moment later. */
  const settle = useCallback(
    async (phase: string) => {
      for (let i = 0; i < SETTLE_TRIES && mounted.current; i++) {
        const current = await reload();
        if (!current || current.phase === phase || FINAL_PHASES.has(current.phase)) return;
        await new Promise((resolve) => setTimeout(resolve, SETTLE_INTERVAL_MS));
      }
    },
    [reload],
  );

  useEffect(() => {
    void reload();
  }, [reload]);

  useEffect(() => {
    if (outcome) outcomeRef.current?.focus();
  }, [outcome]);

  // The confirm step takes the focus; cancelling gives it back to Revoke.
  useLayoutEffect(() => {
    if (confirmingRevoke) confirmRevokeRef.current?.focus();
    else if (confirmShown.current) revokeRef.current?.focus();
    confirmShown.current = confirmingRevoke;
  }, [confirmingRevoke]);

  /** Revokes, once the person confirmed, then follows the grant to Revoked. */
  const revoke = async () => {
    setRevoking(true);
    setOutcome(null);
    let revoked = false;
    try {
      const answer = await api.revoke(namespace, name);
      setOutcome({ kind: "revoked", already: answer.alreadyRevoked });
      revoked = true;
    } catch (e) {
      setOutcome({ kind: "error", error: fail(e) });
    } finally {
      setRevoking(false);
      setConfirmingRevoke(false);
      await (revoked ? settle("Revoked") : reload());
    }
  };

  const decide = async (decision: Decision) => {
    if (!grant) return;
    if (decision === "deny" && !reason.trim()) {
      setReasonMissing(true);
      document.getElementById("deny-reason")?.focus();
      return;
    }
    setBusy(decision);
    setOutcome(null);
    let decided = false;
    let partial = false;
    try {
      const options = await api.decideBegin(namespace, name, decision);
      const changed = bindsWhatIsShown(grant, options);
      if (changed) {
        throw new ApiError(
          CLIENT_CODES.challengeMismatch,
          409,
          `The grant changed since this page showed it (${changed}). Nothing was signed; read it again below, then decide.`,
        );
      }
      const credential = await gesture(() => passkeys.get(requestOptions(options)));
      const answer = await api.decideFinish(namespace, name, decision, assertionJSON(credential));
      // N-of-M: an approval below the quorum is recorded but decides nothing yet.
      partial = decision === "approve" && answer.decided === null;
      if (approver) {
        recordDecision(approver, {
          namespace,
          name,
          agent: grant.agent.name,
          decision: decision === "approve" ? "Approved" : "Denied",
          at: new Date().toISOString(),
          ...(decision === "deny" ? { reason: reason.trim() } : {}),
        });
      }
      setOutcome(partial ? { kind: "partial", progress: answer.progress } : { kind: "decided", decision });
      decided = !partial;
    } catch (e) {
      setOutcome({ kind: "error", error: fail(e) });
    } finally {
      setBusy(null);
      await (decided && !partial ? settle(decision === "approve" ? "Approved" : "Denied") : reload());
    }
  };

  if (loadError && !grant) {
    return (
      <section aria-labelledby="grant-title">
        <h1 id="grant-title">Grant {name}</h1>
        <Problem error={loadError} />
        <p>
          <Link href={`${BASE}/`}>Back to the pending grants</Link>
        </p>
      </section>
    );
  }
  if (!grant) {
    return (
      <p className="muted" role="status">
        Loading…
      </p>
    );
  }

  const decidedByYou = alreadyDecided(grant.quorum);
  const decidable = (grant.pending || grant.suspended === true) && !grant.ownsAgent && !decidedByYou;
  const fingerprint = grant.agentKeyThumbprint ?? null;

  return (
    <article aria-labelledby="grant-title" className="detail">
      <p className="crumbs">
        <Link href={`${BASE}/`}>← Pending grants</Link>
      </p>
      <h1 id="grant-title">
        {grant.agent.displayName ?? grant.agent.name} <span className="muted">asks for access to</span>{" "}
        {grant.serviceProvider}
      </h1>
      <p className="phase">
        <span className={`badge phase-${grant.phase.toLowerCase()}`} data-testid="phase">
          {grant.phase}
        </span>
        {grant.suspended && <span className="badge warn">Suspended: approve again to cover the new values</span>}
        {showsProgress(grant.quorum) && (
          <span className="badge" data-testid="progress">
            {progressLine(grant.quorum)}
          </span>
        )}
        <span className="muted small">
          {" "}
          {grant.namespace}/{grant.name}
        </span>
      </p>

      <div ref={outcomeRef} tabIndex={-1} className="outcome">
        {outcome?.kind === "decided" && (
          <div className="success" role="status" data-testid="decided">
            {outcome.decision === "approve" ? (
              <p>
                <strong>Approved.</strong> Your passkey signed the approval; the agent can now get tokens within these
                limits.
              </p>
            ) : (
              <p>
                <strong>Denied.</strong> The agent will get no tokens for this grant. Your reason: “{reason.trim()}”
              </p>
            )}
          </div>
        )}
        {outcome?.kind === "partial" && (
          <div className="success" role="status" data-testid="decided">
            <p>
              <strong>Approved by you.</strong> {partialOutcome(outcome.progress)}
            </p>
          </div>
        )}
        {outcome?.kind === "revoked" && (
          <div className="success" role="status" data-testid="revoked">
            <p>
              <strong>Revoked.</strong>{" "}
              {outcome.already
                ? "This grant was already revoked."
                : "Verifiers refuse this grant's tokens from now on; the agent must ask for a new grant."}
            </p>
          </div>
        )}
        {outcome?.kind === "error" && <Problem error={outcome.error} />}
      </div>

      <section aria-labelledby="asks-title" className="card">
        <h2 id="asks-title">What it may do</h2>
        <ul className="capabilities">
          {grant.capabilities.map((c, i) => (
            <li key={i}>
              <p>{c.words}</p>
              <details>
                <summary>As data</summary>
                <pre>{JSON.stringify(c.capability, null, 2)}</pre>
              </details>
            </li>
          ))}
        </ul>
      </section>

      <section aria-labelledby="limits-title" className="card">
        <h2 id="limits-title">Limits</h2>
        {!grant.envelope && <p>No behavioural envelope: only the capabilities above limit it.</p>}
        {grant.envelope && !grant.envelope.found && (
          <p className="badge warn">
            The envelope {grant.envelope.name} does not exist; this grant cannot be approved until it does.
          </p>
        )}
        {grant.envelope?.limits && (
          <>
            <p className="muted small">Envelope {grant.envelope.name}</p>
            <ul className="limits">
              {grant.envelope.limits.map((l, i) => (
                <li key={i}>{l}</li>
              ))}
            </ul>
            {grant.envelope.limits.length === 0 && <p>The envelope sets no limits.</p>}
          </>
        )}
      </section>

      <section aria-labelledby="facts-title" className="card">
        <h2 id="facts-title">Details</h2>
        <dl className="facts">
          <div>
            <dt>Agent</dt>
            <dd>
              {grant.namespace}/{grant.agent.name}
              {grant.agent.description ? ` — ${grant.agent.description}` : ""}
            </dd>
          </div>
          <div>
            <dt>Owner</dt>
            <dd>{grant.agent.owner ?? "unknown"}</dd>
          </div>
          <div>
            <dt>Agent key fingerprint</dt>
            <dd>
              {fingerprint ? (
                <code className="fingerprint" data-testid="fingerprint">
                  {fingerprint}
                </code>
              ) : (
                "not known yet"
              )}
            </dd>
          </div>
          <div>
            <dt>Service provider</dt>
            <dd>{grant.serviceProvider}</dd>
          </div>
          <div>
            <dt>Reason given</dt>
            <dd>{grant.reason ?? "none"}</dd>
          </div>
          <div>
            <dt>Lasts</dt>
            <dd>
              {grant.expiresAt ? (
                <>
                  until <Time at={grant.expiresAt} /> ({relative(grant.expiresAt)})
                </>
              ) : grant.duration ? (
                `${grant.duration} from its creation`
              ) : (
                "until revoked"
              )}
            </dd>
          </div>
          {grant.approval && (
            <div>
              <dt>Decision</dt>
              <dd data-testid="decision">
                {grant.approval.decision} by {grant.approval.approver} on <Time at={grant.approval.signedAt} />
              </dd>
            </div>
          )}
        </dl>
      </section>

      {decidedByYou && grant.pending && (
        <p className="notice" data-testid="already-decided">
          {decidedByYou}
        </p>
      )}
      {grant.ownsAgent && (
        <p className="notice" data-testid="owns-agent">
          You own this agent, so you cannot decide its grants: another approver must.
        </p>
      )}

      {decidable && (
        <section aria-labelledby="decide-title" className="card decide">
          <h2 id="decide-title">Decide</h2>
          <p className="muted small">
            Your passkey signs this grant exactly as shown above: if it changes before you confirm, the decision is
            refused.
          </p>
          <div className="actions">
            <button type="button" onClick={() => void decide("approve")} disabled={busy !== null}>
              {busy === "approve" ? "Waiting for your passkey…" : "Approve with passkey"}
            </button>
          </div>
          {!grant.suspended && (
            <form
              className="deny"
              onSubmit={(e: FormEvent) => {
                e.preventDefault();
                void decide("deny");
              }}
            >
              <div className="field">
                <label htmlFor="deny-reason">Reason for denying</label>
                <textarea
                  id="deny-reason"
                  rows={2}
                  maxLength={500}
                  value={reason}
                  aria-invalid={reasonMissing && !reason.trim() ? true : undefined}
                  aria-describedby="deny-hint"
                  onChange={(e) => {
                    setReason(e.target.value);
                    setReasonMissing(false);
                  }}
                />
                <p id="deny-hint" className={reasonMissing && !reason.trim() ? "hint error" : "hint"}>
                  {reasonMissing && !reason.trim()
                    ? "Say why you deny it: the reason is kept in your history in this browser."
                    : "Required to deny. Kept in your history in this browser; the decision itself records no reason."}
                </p>
              </div>
              <button type="submit" className="danger" disabled={busy !== null}>
                {busy === "deny" ? "Waiting for your passkey…" : "Deny with passkey"}
              </button>
            </form>
          )}
        </section>
      )}
      {grant.revocable && (
        <section aria-labelledby="revoke-title" className="card revoke">
          <h2 id="revoke-title">Revoke</h2>
          <p className="muted small" id="revoke-hint">
            Revoking takes this approval back for good: verifiers refuse the grant's tokens within a second, and the
            agent must ask for a new grant. No passkey is needed.
          </p>
          {confirmingRevoke ? (
            <div role="group" aria-labelledby="revoke-confirm-text" className="confirm" data-testid="revoke-confirm">
              <p id="revoke-confirm-text">
                <strong>
                  Revoke {grant.namespace}/{grant.name}?
                </strong>{" "}
                {grant.agent.displayName ?? grant.agent.name} loses this access at once. This cannot be undone.
              </p>
              <div className="actions">
                <button
                  type="button"
                  className="danger"
                  ref={confirmRevokeRef}
                  onClick={() => void revoke()}
                  disabled={revoking}
                >
                  {revoking ? "Revoking…" : "Yes, revoke"}
                </button>
                <button
                  type="button"
                  className="secondary"
                  onClick={() => setConfirmingRevoke(false)}
                  disabled={revoking}
                >
                  Cancel
                </button>
              </div>
            </div>
          ) : (
            <div className="actions">
              <button
                type="button"
                className="danger"
                ref={revokeRef}
                aria-describedby="revoke-hint"
                onClick={() => setConfirmingRevoke(true)}
              >
                Revoke
              </button>
            </div>
          )}
        </section>
      )}
      {!decidable && !grant.revocable && !grant.ownsAgent && !(decidedByYou && grant.pending) && (
        <p className="notice" data-testid="final">
          This grant is {grant.phase}: its decision is final and cannot be changed here.
        </p>
      )}
    </article>
  );
}
