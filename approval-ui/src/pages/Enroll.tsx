import { useState, type FormEvent } from "react";
import { ApiError } from "../api";
import { asApiError } from "../App";
import { useServices } from "../context";
import { Problem } from "../components/Problem";
import { Link } from "../components/Link";
import { BASE } from "../router";
import { creationOptions, gesture, registrationJSON } from "../webauthn";

type State = { step: "ready" } | { step: "working" } | { step: "done"; credentialId: string } | { step: "failed"; error: ApiError };

/** Enrollment from the link `agentauth approver enroll-token` prints. */
export function EnrollPage({ approver, token }: { approver: string; token: string }) {
  const { api, passkeys } = useServices();
  // The token is read once from the fragment; the address bar loses it
  // after use so it is not left in the browser's history.
  const [secret] = useState(token);
  const [state, setState] = useState<State>({ step: "ready" });

  if (!approver || !secret) {
    return (
      <section aria-labelledby="enroll-title" className="card narrow">
        <h1 id="enroll-title">Enroll a passkey</h1>
        <Problem
          error={
            new ApiError(
              "enrollment_token_invalid",
              0,
              "This link is incomplete: it needs ?approver=… and #token=… . Copy the whole link that " +
                "`agentauth approver enroll-token` printed, or ask your administrator for a new one.",
            )
          }
        />
      </section>
    );
  }

  const enroll = async (e: FormEvent) => {
    e.preventDefault();
    setState({ step: "working" });
    try {
      const options = await api.enrollBegin(approver, secret);
      const credential = await gesture(() => passkeys.create(creationOptions(options)));
      const done = await api.enrollFinish(registrationJSON(credential));
      window.history.replaceState(null, "", `${BASE}/enroll?approver=${encodeURIComponent(approver)}`);
      localStorage.setItem("agentauth.lastApprover", approver);
      setState({ step: "done", credentialId: done.credentialId });
    } catch (err) {
      setState({ step: "failed", error: asApiError(err) });
    }
  };

  return (
    <section aria-labelledby="enroll-title" className="card narrow">
      <h1 id="enroll-title">Enroll a passkey</h1>
      {state.step === "done" ? (
        <div className="success" role="status">
          <p>
            <strong>Your passkey is ready.</strong> Approver <strong>{approver}</strong> can now sign in and decide
            grants with it.
          </p>
          <p>
            <Link className="button" href={`${BASE}/`}>
              Sign in
            </Link>
          </p>
        </div>
      ) : (
        <form onSubmit={(e) => void enroll(e)}>
          <p>
            You are about to create a passkey for the approver <strong>{approver}</strong>. It stays on this device
            (or your password manager); your device will ask for your fingerprint, face or PIN.
          </p>
          <p>
            With it you approve or deny what AI agents ask to do. Each decision is signed by the passkey and checked
            by the cluster, so nobody can decide in your name without it.
          </p>
          <p className="muted">This link works once and expires; it is used up when the passkey is saved.</p>
          {state.step === "failed" && (
            <Problem
              error={state.error}
              title={
                state.error.code === "enrollment_token_invalid"
                  ? "This enrollment link cannot be used: it is wrong, already used, replaced by a newer one, or expired. Ask your administrator for a new link."
                  : undefined
              }
            />
          )}
          <button type="submit" disabled={state.step === "working"}>
            {state.step === "working" ? "Waiting for your passkey…" : "Create passkey"}
          </button>
        </form>
      )}
    </section>
  );
}
