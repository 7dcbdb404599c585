// The one client of the approval API (docs/approvals.md). Components call
// these functions and never `fetch` themselves, so the CSRF header, the
// cookie policy and the error shape are handled in one place.
//
//   GET  session                       -> {csrfToken, approver}
//   POST enroll/begin|finish           (anonymous session, one-time token)
//   POST login/begin|finish            -> new session id and CSRF token
//   POST logout
//   GET  grants                        -> pending grants in scope
//   GET  grants/{ns}/{name}            -> one grant in plain words
//   POST grants/{ns}/{name}/{approve,deny}/begin|finish
//   POST grants/{ns}/{name}/revoke     -> spec.revoked set (approved grants only)
//   GET  history                       -> grants this approver decided, newest first

export const API_BASE = "/approvals/api";

/** A refusal of the API: its stable code (RFC 9457 `code`), status and message. */
export class ApiError extends Error {
  constructor(
    public readonly code: string,
    public readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** Codes the UI produces itself, in the API's vocabulary. */
export const CLIENT_CODES = {
  network: "network_unavailable",
  passkeyCancelled: "passkey_cancelled",
  passkeyUnsupported: "passkey_unsupported",
  challengeMismatch: "approval_challenge_mismatch",
} as const;

/** `GET session`. */
export interface SessionInfo {
  csrfToken: string;
  approver: string | null;
}

/** N-of-M progress of a grant (`spec.approvals`, or its envelope's). */
export interface Quorum {
  /** Distinct approvers needed. */
  required: number;
  /** Approvers whose approval is recorded, in order. */
  approvedBy: string[];
  /** Approvers whose denial is recorded (counted only with `denial: Quorum`). */
  deniedBy: string[];
  /** What one denial does: `Veto` ends the grant, `Quorum` counts it. */
  denial: "Veto" | "Quorum";
  /** E.g. "1/2 approved". */
  progress: string;
  /** What the signed-in approver decided already, if anything. */
  yourDecision: "Approved" | "Denied" | null;
}

/** A pending grant as `GET grants` lists it. */
export interface GrantSummary {
  namespace: string;
  name: string;
  agent: string;
  agentOwner: string | null;
  serviceProvider: string;
  reason: string | null;
  capabilities: string[];
  createdAt: string | null;
  ownsAgent: boolean;
  suspended?: boolean;
  quorum?: Quorum;
}

/** One capability, in words and as data. */
export interface CapabilityDetail {
  words: string;
  capability: Record<string, unknown>;
}

/** A recorded decision (`status.approval`). */
export interface ApprovalRecord {
  approver: string;
  decision: "Approved" | "Denied";
  signedAt: string;
  credentialId?: string;
}

/** `GET grants/{ns}/{name}`. */
export interface GrantDetail {
  namespace: string;
  name: string;
  uid: string | null;
  generation: number | null;
  phase: string;
  pending: boolean;
  suspended?: boolean;
  envelopeDigest?: string | null;
  agentKeyThumbprint?: string | null;
  agent: {
    name: string;
    displayName: string | null;
    owner: string | null;
    description: string | null;
    keyWords?: string | null;
  };
  serviceProvider: string;
  capabilities: CapabilityDetail[];
  envelope: { name: string; found: boolean; limits: string[] | null } | null;
  expiresAt: string | null;
  duration: string | null;
  reason: string | null;
  approval: ApprovalRecord | null;
  /** Co-signatures recorded before the deciding one (N-of-M). */
  approvals?: ApprovalRecord[];
  quorum?: Quorum;
  ownsAgent: boolean;
  /** `spec.revoked` is set (the phase follows to Revoked). */
  revoked?: boolean;
  /** Approved and not revoked: `revoke()` would take the approval back. */
  revocable?: boolean;
}

/** A decision as `GET history` lists it, with where the grant stands now. */
export interface HistoryEntry {
  namespace: string;
  name: string;
  agent: string;
  decision: "Approved" | "Denied";
  signedAt: string;
  phase: string;
  revoked: boolean;
}

/** `GET history`. */
export interface History {
  decisions: HistoryEntry[];
  /** More decisions than `max` exist; the oldest are left off. */
  truncated: boolean;
  max: number;
}

/** `POST grants/{ns}/{name}/revoke`. */
export interface Revocation {
  revoked: true;
  alreadyRevoked: boolean;
  approver: string;
}

/** What a decision ceremony binds, as `…/begin` reports it. */
export interface CeremonyGrant {
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  specDigest: string;
  envelopeDigest?: string;
  agentKeyThumbprint?: string;
}

/** WebAuthn options in JSON form (binary fields base64url). */
export interface CreationOptionsJSON {
  publicKey: Record<string, unknown>;
}
export interface RequestOptionsJSON {
  publicKey: Record<string, unknown>;
}
export interface DecisionOptions extends RequestOptionsJSON {
  decision: "Approved" | "Denied";
  grant: CeremonyGrant;
}

export type Decision = "approve" | "deny";

/** The answer of a finished decision: with N-of-M, whether it decided the grant. */
export interface DecisionAnswer {
  decision: string;
  approver: string;
  /** E.g. "1/2 approved". */
  progress?: string;
  /** "Approved" or "Denied" once the grant is decided; null while more approvers are needed. */
  decided?: string | null;
}

type Fetch = typeof fetch;

/** The client. One per page; it keeps the session's CSRF token. */
export class ApprovalApi {
  private csrf: string | null = null;

  constructor(
    private readonly fetchImpl: Fetch = (...args) => fetch(...args),
    private readonly base: string = API_BASE,
  ) {}

  /** The CSRF token POSTs carry (after `session()` or a login). */
  get csrfToken(): string | null {
    return this.csrf;
  }

  private async call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (method === "POST") {
      headers["Content-Type"] = "application/json";
      if (this.csrf) headers["X-CSRF-Token"] = this.csrf;
    }
    let response: Response;
    try {
      response = await this.fetchImpl(this.base + path, {
        method,
        headers,
        credentials: "same-origin",
        cache: "no-store",
        body: method === "POST" ? JSON.stringify(body ?? {}) : undefined,
      });
    } catch {
      throw new ApiError(
        CLIENT_CODES.network,
        0,
        "The approval service cannot be reached. Check your connection and try again.",
      );
    }
    const text = await response.text();
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    if (!response.ok) {
      const problem = (parsed ?? {}) as { code?: unknown; detail?: unknown; title?: unknown };
      const code = typeof problem.code === "string" ? problem.code : `http_${response.status}`;
      const message =
        typeof problem.detail === "string"
          ? problem.detail
          : typeof problem.title === "string"
            ? problem.title
            : `The approval service answered HTTP ${response.status}.`;
      throw new ApiError(code, response.status, message);
    }
    return parsed as T;
  }

  /** Reads (or starts) the session and keeps its CSRF token. */
  async session(): Promise<SessionInfo> {
    const info = await this.call<SessionInfo>("GET", "/session");
    this.csrf = info.csrfToken;
    return info;
  }

  private async ensureSession(): Promise<void> {
    if (!this.csrf) await this.session();
  }

  async enrollBegin(approver: string, token: string): Promise<CreationOptionsJSON> {
    await this.ensureSession();
    return this.call("POST", "/enroll/begin", { approver, token });
  }

  async enrollFinish(credential: unknown): Promise<{ approver: string; credentialId: string }> {
    return this.call("POST", "/enroll/finish", credential);
  }

  async loginBegin(approver: string): Promise<RequestOptionsJSON> {
    await this.ensureSession();
    return this.call("POST", "/login/begin", { approver });
  }

  async loginFinish(credential: unknown): Promise<{ approver: string; csrfToken: string }> {
    const answer = await this.call<{ approver: string; csrfToken: string }>(
      "POST",
      "/login/finish",
      credential,
    );
    this.csrf = answer.csrfToken;
    return answer;
  }

  async logout(): Promise<void> {
    try {
      await this.call("POST", "/logout");
    } finally {
      this.csrf = null;
    }
  }

  async pending(): Promise<GrantSummary[]> {
    const answer = await this.call<{ grants: GrantSummary[] }>("GET", "/grants");
    return answer.grants;
  }

  async grant(namespace: string, name: string): Promise<GrantDetail> {
    return this.call("GET", `/grants/${enc(namespace)}/${enc(name)}`);
  }

  async decideBegin(namespace: string, name: string, decision: Decision): Promise<DecisionOptions> {
    return this.call("POST", `/grants/${enc(namespace)}/${enc(name)}/${decision}/begin`);
  }

  async decideFinish(
    namespace: string,
    name: string,
    decision: Decision,
    credential: unknown,
  ): Promise<DecisionAnswer> {
    return this.call("POST", `/grants/${enc(namespace)}/${enc(name)}/${decision}/finish`, credential);
  }

  /** Takes an approval back: sets the grant's `spec.revoked` (no passkey signs this). */
  async revoke(namespace: string, name: string): Promise<Revocation> {
    return this.call("POST", `/grants/${enc(namespace)}/${enc(name)}/revoke`);
  }

  /** The grants this approver decided, newest first, from the server. */
  async history(): Promise<History> {
    return this.call("GET", "/history");
  }
}

function enc(segment: string): string {
  return encodeURIComponent(segment);
}
