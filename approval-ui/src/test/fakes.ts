// Test doubles: a scripted fetch for the approval API, and a passkey device
// that answers like a browser would. (Mocks: no browser or API runs in vitest;
// the real ones are exercised by e2e/browser against `agentauth dev`.)
import { vi } from "vitest";
import type { PasskeyDevice } from "../webauthn";

export interface Call {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

type Handler = (call: Call) => { status?: number; body?: unknown } | undefined;

/** A fetch that answers from `routes` ("METHOD /path" → handler or body). */
export function fakeFetch(routes: Record<string, Handler | unknown>) {
  const calls: Call[] = [];
  const fetchImpl = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input.toString();
    const path = url.replace(/^\/approvals\/api/, "");
    const method = init?.method ?? "GET";
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    const call = { method, path, headers, body };
    calls.push(call);
    const route = routes[`${method} ${path}`];
    const answer =
      typeof route === "function" ? (route as Handler)(call) ?? { body: {} } : route === undefined ? undefined : { body: route };
    if (!answer) {
      return new Response(JSON.stringify({ code: "not_found_in_test", detail: `no route ${method} ${path}` }), {
        status: 404,
      });
    }
    return new Response(JSON.stringify(answer.body ?? {}), {
      status: answer.status ?? 200,
      headers: { "Content-Type": "application/json" },
    });
  });
  return { fetchImpl: fetchImpl as unknown as typeof fetch, calls };
}

export function problem(status: number, code: string, detail: string) {
  return { status, body: { type: "about:blank", title: code, status, detail, code } };
}

const buf = (...bytes: number[]) => new Uint8Array(bytes).buffer;

/** A passkey device whose credentials carry fixed bytes. */
export function fakePasskeys(): PasskeyDevice & { gets: CredentialRequestOptions[] } {
  const gets: CredentialRequestOptions[] = [];
  const base = { id: "AQID", rawId: buf(1, 2, 3), type: "public-key", getClientExtensionResults: () => ({}) };
  return {
    gets,
    create: async () =>
      ({ ...base, response: { attestationObject: buf(4, 5), clientDataJSON: buf(6) } }) as unknown as Credential,
    get: async (options) => {
      gets.push(options);
      return {
        ...base,
        response: { authenticatorData: buf(7), clientDataJSON: buf(8), signature: buf(9), userHandle: null },
      } as unknown as Credential;
    },
  };
}

export const detail = (over: Record<string, unknown> = {}) => ({
  namespace: "agents",
  name: "shop-1",
  uid: "uid-1",
  generation: 1,
  phase: "Pending",
  pending: true,
  suspended: false,
  envelopeDigest: "env-digest",
  agentKeyThumbprint: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
  agent: { name: "shopping-agent", displayName: "Shopping agent", owner: "sam@example.com", description: null },
  serviceProvider: "https://shop.example.com",
  capabilities: [{ words: "Read catalog and everything under it", capability: { type: "read", resource: "catalog/**" } }],
  envelope: { name: "shopping-limits", found: true, limits: ["At most 50.00 EUR per transaction"] },
  expiresAt: null,
  duration: "1h",
  reason: "compare prices",
  approval: null,
  ownsAgent: false,
  ...over,
});

export const begin = (over: Record<string, unknown> = {}) => ({
  publicKey: { challenge: "AAEC", rpId: "localhost", allowCredentials: [{ type: "public-key", id: "AQID" }], userVerification: "required" },
  decision: "Approved",
  grant: {
    namespace: "agents",
    name: "shop-1",
    uid: "uid-1",
    generation: 1,
    specDigest: "spec",
    envelopeDigest: "env-digest",
    agentKeyThumbprint: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    ...over,
  },
});
