import { useCallback } from "react";
import { useServices } from "../context";
import { denialReason, readHistory } from "../history";
import { useSessionPoll } from "../poll";
import { grantPath } from "../router";
import { Link } from "../components/Link";
import { Problem } from "../components/Problem";
import { Time } from "../components/Time";

/** The grants this approver decided, from the server, newest first, with
 * where each stands now. An approved grant is revoked from its page. */
export function HistoryPage() {
  const { api, approver } = useServices();
  const load = useCallback(() => api.history(), [api]);
  const { data, error } = useSessionPoll(load, { base: 15000 });
  const local = approver ? readHistory(approver) : [];
  const entries = data?.decisions ?? [];

  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">History</h1>
      <p className="muted">Grants you decided, newest first, and where each stands now.</p>
      {error && <Problem error={error} />}
      {!data && !error && (
        <p className="muted" role="status">
          Loading…
        </p>
      )}
      {data && entries.length === 0 && (
        <div className="empty" data-testid="history-empty">
          <p>You have not decided any grant yet.</p>
        </div>
      )}
      {entries.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Your decisions</caption>
            <thead>
              <tr>
                <th scope="col">Grant</th>
                <th scope="col">Decision</th>
                <th scope="col">Now</th>
                <th scope="col">When</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={`${e.namespace}/${e.name}`} data-history={`${e.namespace}/${e.name}`}>
                  <td>
                    <Link href={grantPath(e.namespace, e.name)}>
                      {e.namespace}/{e.name}
                    </Link>
                    <div className="muted small">{e.agent}</div>
                  </td>
                  <td>
                    <span className={`badge phase-${e.decision.toLowerCase()}`}>{e.decision}</span>
                  </td>
                  <td>
                    <span className={`badge phase-${e.phase.toLowerCase()}`}>{e.phase}</span>
                  </td>
                  <td>
                    <Time at={e.signedAt} />
                  </td>
                  <td>{(e.decision === "Denied" && denialReason(local, e.namespace, e.name)) || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {data?.truncated && (
        <p className="muted small">Only your {data.max} most recent decisions are listed; the audit trail has them all.</p>
      )}
    </section>
  );
}
