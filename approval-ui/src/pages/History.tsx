import { useServices } from "../context";
import { readHistory } from "../history";
import { grantPath } from "../router";
import { Link } from "../components/Link";
import { Time } from "../components/Time";

/** The decisions this approver made in this browser. */
export function HistoryPage() {
  const { approver } = useServices();
  const entries = approver ? readHistory(approver) : [];
  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">History</h1>
      <p className="muted">Grants you decided in this browser, newest first.</p>
      {entries.length === 0 ? (
        <div className="empty">
          <p>You have not decided any grant in this browser yet.</p>
        </div>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Your decisions</caption>
            <thead>
              <tr>
                <th scope="col">Grant</th>
                <th scope="col">Outcome</th>
                <th scope="col">When</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e, i) => (
                <tr key={i}>
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
                    <Time at={e.at} />
                  </td>
                  <td>{e.reason ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
