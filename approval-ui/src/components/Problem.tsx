import type { ApiError } from "../api";

/** Plain-language lead-ins for the refusals a person can run into. */
const LEADS: Record<string, string> = {
  session_invalid: "Your session has ended.",
  csrf_invalid: "This page's security token is stale. Reload the page.",
  cross_site_request: "This request did not come from the approval page itself.",
  approver_out_of_scope: "This grant is outside your approval scope.",
  approver_owns_agent: "You own this agent, so another approver must decide.",
  approver_not_authorized: "Kubernetes RBAC does not let you approve this grant.",
  decision_immutable: "This grant was already decided.",
  approval_challenge_mismatch: "The grant changed while you were deciding. Nothing was recorded.",
  enrollment_token_invalid: "This enrollment link cannot be used.",
  approver_not_found: "There is no approver with that name.",
  grant_unknown: "There is no such grant.",
  passkey_cancelled: "The passkey request was cancelled.",
  passkey_unsupported: "Passkeys are not available in this browser.",
  passkey_ceremony_failed: "The passkey could not be verified.",
  network_unavailable: "The approval service cannot be reached.",
  state_unavailable: "The approval service is temporarily unavailable.",
};

/** A refusal: what it means, the API's own message, and its stable code. */
export function Problem({ error, title }: { error: ApiError; title?: string }) {
  const lead = title ?? LEADS[error.code] ?? "The request was refused.";
  return (
    <div className="problem" role="alert" data-code={error.code}>
      <p className="problem-lead">{lead}</p>
      <p className="problem-detail">{error.message}</p>
      <p className="problem-code">
        Code: <code>{error.code}</code>
      </p>
    </div>
  );
}
