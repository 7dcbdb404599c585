import { useCallback } from "react";
import type { GrantSummary } from "../api";
import { useServices } from "../context";
import { useSessionPoll } from "../poll";
import { grantPath } from "../router";
import { Link } from "../components/Link";
import { Problem } from "../components/Problem";
import { Time, relative } from "../components/Time";
import { alreadyDecided, progressLine, showsProgress } from "../quorum";

/** The pending grants within the approver's scope, kept up to date. */
export function PendingPage() {
  const { api } = useServices();
  const load = useCallback(() => api.pending(), [api]);
  const { data, error, updatedAt } = useSessionPoll(load);

  return (
    <section aria-labelledby="pending-title">
      <div className="heading-row">
        <h1 id="pending-title">Pending grants</h1>
        <p className="muted small" aria-live="polite">
          {data ? `${data.length} waiting` : ""}
          {updatedAt ? ` · updated ${updatedAt.toLocaleTimeString()}` : ""}
        </p>
      </div>
      {error && <Problem error={error} />}
      {!data && !error && (
        <p className="muted" role="status">
          Loading…
        </p>
      )}
      {data && data.length === 0 && (
        <div className="empty" data-testid="empty">
          <p>
            <strong>Nothing to decide.</strong>
          </p>
          <p className="muted">
            When an agent asks for a grant in your scope, it appears here. This list refreshes by itself.
          </p>
        </div>
      )}
      {data && data.length > 0 && (
        <ul className="grants" aria-label="Grants waiting for a decision">
          {data.map((g) => (
            <GrantCard key={`${g.namespace}/${g.name}`} grant={g} />
          ))}
        </ul>
      )}
    </section>
  );
}

function GrantCard({ grant }: { grant: GrantSummary }) {
  return (
    <li className="card grant" data-grant={`${grant.namespace}/${grant.name}`}>
      <h2>
        <Link href={grantPath(grant.namespace, grant.name)}>
          {grant.agent} <span className="muted">wants access to</span> {grant.serviceProvider}
        </Link>
      </h2>
      {grant.suspended && (
        <p className="badge warn">Suspended: its envelope or agent key changed since it was approved</p>
      )}
      {grant.ownsAgent && <p className="badge">You own this agent: another approver must decide</p>}
      {showsProgress(grant.quorum) && (
        <p className="badge" data-testid="progress">
          {progressLine(grant.quorum)}
        </p>
      )}
      {grant.quorum?.yourDecision && <p className="badge">{alreadyDecided(grant.quorum)}</p>}
      <ul className="asks">
        {grant.capabilities.map((c, i) => (
          <li key={i}>{c}</li>
        ))}
      </ul>
      <dl className="facts">
        <div>
          <dt>Agent</dt>
          <dd>
            {grant.namespace}/{grant.agent}
          </dd>
        </div>
        <div>
          <dt>Owner</dt>
          <dd>{grant.agentOwner ?? "unknown"}</dd>
        </div>
        <div>
          <dt>Requested</dt>
          <dd>
            <Time at={grant.createdAt} /> <span className="muted">({relative(grant.createdAt)})</span>
          </dd>
        </div>
        {grant.reason && (
          <div>
            <dt>Reason given</dt>
            <dd>{grant.reason}</dd>
          </div>
        )}
      </dl>
    </li>
  );
}
