import { useState, type FormEvent } from "react";
import type { ApiError } from "../api";
import { asApiError } from "../App";
import { useServices } from "../context";
import { Problem } from "../components/Problem";
import { assertionJSON, gesture, requestOptions } from "../webauthn";

const LAST = "agentauth.lastApprover";

/** Sign in with a passkey. `ended`: the previous session expired or ended. */
export function SignInPage({ ended }: { ended: boolean }) {
  const { api, passkeys, signedIn } = useServices();
  const [name, setName] = useState(() => localStorage.getItem(LAST) ?? "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const approver = name.trim();
    if (!approver) return;
    setBusy(true);
    setError(null);
    try {
      const options = await api.loginBegin(approver);
      const credential = await gesture(() => passkeys.get(requestOptions(options)));
      const answer = await api.loginFinish(assertionJSON(credential));
      localStorage.setItem(LAST, answer.approver);
      signedIn(answer.approver);
    } catch (err) {
      setError(asApiError(err));
      // A failed ceremony used the session's ceremony up: start afresh.
      await api.session().catch(() => undefined);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="signin-title" className="card narrow">
      <h1 id="signin-title">Sign in</h1>
      {ended && (
        <div className="notice" role="status" data-testid="session-ended">
          <p>
            <strong>Your session has ended</strong> (it expired, or you signed out elsewhere). Sign in again with your
            passkey to continue.
          </p>
        </div>
      )}
      <form onSubmit={(e) => void submit(e)}>
        <div className="field">
          <label htmlFor="approver">Approver name</label>
          <input
            id="approver"
            name="approver"
            autoComplete="username webauthn"
            autoCapitalize="none"
            spellCheck={false}
            required
            value={name}
            onChange={(e) => setName(e.target.value)}
            aria-describedby="approver-hint"
          />
          <p id="approver-hint" className="hint">
            The name of your Approver resource, e.g. <code>dana-fischer</code>.
          </p>
        </div>
        {error && <Problem error={error} />}
        <button type="submit" disabled={busy}>
          {busy ? "Waiting for your passkey…" : "Sign in with passkey"}
        </button>
      </form>
    </section>
  );
}
