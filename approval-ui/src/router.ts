// A small client-side router over the History API: the operator answers
// every /approvals/… path that is not a file with index.html.
import { useEffect, useState } from "react";

export const BASE = "/approvals";

export type Route =
  | { page: "pending" }
  | { page: "grant"; namespace: string; name: string }
  | { page: "history" }
  | { page: "enroll"; approver: string; token: string }
  | { page: "signin" }
  | { page: "notFound" };

/** The route of a location (path, query and fragment). */
export function parse(pathname: string, search: string, hash: string): Route {
  const path = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  const parts = path.split("/").filter(Boolean).map(safeDecode);
  if (parts.length === 0) return { page: "pending" };
  if (parts[0] === "history" && parts.length === 1) return { page: "history" };
  if (parts[0] === "signin" && parts.length === 1) return { page: "signin" };
  if (parts[0] === "enroll" && parts.length === 1) {
    const query = new URLSearchParams(search);
    // The token rides in the fragment so that it never reaches a server log.
    const fragment = new URLSearchParams(hash.replace(/^#/, ""));
    return {
      page: "enroll",
      approver: query.get("approver") ?? "",
      token: fragment.get("token") ?? "",
    };
  }
  if (parts[0] === "grants" && parts.length === 3) {
    return { page: "grant", namespace: parts[1] as string, name: parts[2] as string };
  }
  return { page: "notFound" };
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function grantPath(namespace: string, name: string): string {
  return `${BASE}/grants/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
}

function current(): Route {
  return parse(window.location.pathname, window.location.search, window.location.hash);
}

/** Goes to `path` without a page load. */
export function navigate(path: string, replace = false): void {
  if (replace) window.history.replaceState(null, "", path);
  else window.history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

/** The current route, following back/forward and `navigate`. */
export function useRoute(): Route {
  const [route, setRoute] = useState<Route>(current);
  useEffect(() => {
    const update = () => setRoute(current());
    window.addEventListener("popstate", update);
    return () => window.removeEventListener("popstate", update);
  }, []);
  return route;
}
