import { useCallback, useEffect, useMemo, useState } from "react";
import { ApiError, type ApprovalApi } from "./api";
import { ServicesContext, type Services } from "./context";
import { BASE, navigate, useRoute, type Route } from "./router";
import type { PasskeyDevice } from "./webauthn";
import { Problem } from "./components/Problem";
import { Link } from "./components/Link";
import { EnrollPage } from "./pages/Enroll";
import { SignInPage } from "./pages/SignIn";
import { PendingPage } from "./pages/Pending";
import { GrantPage } from "./pages/Grant";
import { HistoryPage } from "./pages/History";

type Auth =
  | { state: "loading" }
  | { state: "failed"; error: ApiError }
  | { state: "anonymous"; ended: boolean }
  | { state: "signedIn"; approver: string };

export function App({ api, passkeys }: { api: ApprovalApi; passkeys: PasskeyDevice }) {
  const route = useRoute();
  const [auth, setAuth] = useState<Auth>({ state: "loading" });

  useEffect(() => {
    let live = true;
    api
      .session()
      .then((s) => {
        if (live) setAuth(s.approver ? { state: "signedIn", approver: s.approver } : { state: "anonymous", ended: false });
      })
      .catch((e: unknown) => {
        if (live) setAuth({ state: "failed", error: asApiError(e) });
      });
    return () => {
      live = false;
    };
  }, [api]);

  const sessionEnded = useCallback(() => {
    setAuth({ state: "anonymous", ended: true });
    // A fresh anonymous session (and CSRF token) for the next sign-in.
    api.session().catch(() => undefined);
  }, [api]);
  const signedIn = useCallback((approver: string) => setAuth({ state: "signedIn", approver }), []);
  const signOut = useCallback(async () => {
    await api.logout().catch(() => undefined);
    await api.session().catch(() => undefined);
    setAuth({ state: "anonymous", ended: false });
    navigate(`${BASE}/`);
  }, [api]);

  const approver = auth.state === "signedIn" ? auth.approver : null;
  const services: Services = useMemo(
    () => ({ api, passkeys, approver, sessionEnded, signedIn }),
    [api, passkeys, approver, sessionEnded, signedIn],
  );

  useEffect(() => {
    document.title = `${title(route, approver)} · AgentAuth approvals`;
  }, [route, approver]);

  return (
    <ServicesContext.Provider value={services}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <div className="top-inner">
          <Link className="brand" href={`${BASE}/`}>
            <span aria-hidden="true" className="logo" />
            AgentAuth approvals
          </Link>
          {approver && (
            <nav aria-label="Main">
              <ul>
                <li>
                  <Link href={`${BASE}/`} current={route.page === "pending" || route.page === "grant"}>
                    Pending
                  </Link>
                </li>
                <li>
                  <Link href={`${BASE}/history`} current={route.page === "history"}>
                    History
                  </Link>
                </li>
              </ul>
            </nav>
          )}
          {approver && (
            <div className="who">
              <span>
                Signed in as <strong>{approver}</strong>
              </span>
              <button type="button" className="secondary small" onClick={() => void signOut()}>
                Sign out
              </button>
            </div>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {body(route, auth)}
      </main>
    </ServicesContext.Provider>
  );
}

function body(route: Route, auth: Auth) {
  if (route.page === "enroll") return <EnrollPage approver={route.approver} token={route.token} />;
  if (auth.state === "loading") {
    return (
      <p className="muted" role="status">
        Loading…
      </p>
    );
  }
  if (auth.state === "failed") {
    return (
      <>
        <h1>Approvals are unavailable</h1>
        <Problem error={auth.error} />
      </>
    );
  }
  if (auth.state === "anonymous") return <SignInPage ended={auth.ended} />;
  switch (route.page) {
    case "pending":
    case "signin":
      return <PendingPage />;
    case "grant":
      return <GrantPage namespace={route.namespace} name={route.name} />;
    case "history":
      return <HistoryPage />;
    case "notFound":
      return (
        <>
          <h1>Page not found</h1>
          <p>
            There is nothing at this address. <Link href={`${BASE}/`}>See the pending grants</Link>.
          </p>
        </>
      );
  }
}

function title(route: Route, approver: string | null): string {
  if (route.page === "enroll") return "Enroll a passkey";
  if (!approver) return "Sign in";
  switch (route.page) {
    case "grant":
      return `Grant ${route.name}`;
    case "history":
      return "History";
    case "notFound":
      return "Not found";
    default:
      return "Pending grants";
  }
}

export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError("ui_error", 0, e instanceof Error ? e.message : String(e));
}
