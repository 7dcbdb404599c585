// navigator.credentials with the approval API's JSON options: binary fields
// travel as base64url (webauthn-rs' JSON form, the same the software passkey
// in e2e/soft-passkey sends) and become ArrayBuffers for the browser.

import { ApiError, CLIENT_CODES } from "./api";

export function b64urlToBytes(text: string): Uint8Array {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const raw = atob(padded);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export function bytesToB64url(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let raw = "";
  for (let i = 0; i < view.length; i++) raw += String.fromCharCode(view[i] as number);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

type Json = Record<string, unknown>;

function bytes(value: unknown, field: string): Uint8Array {
  if (typeof value !== "string") {
    throw new ApiError("request_invalid", 0, `The server's passkey options lack ${field}.`);
  }
  return b64urlToBytes(value);
}

function descriptors(list: unknown): PublicKeyCredentialDescriptor[] | undefined {
  if (!Array.isArray(list)) return undefined;
  return list.map((c: Json) => ({
    type: "public-key" as const,
    id: bytes(c.id, "a credential id"),
    ...(Array.isArray(c.transports) ? { transports: c.transports as AuthenticatorTransport[] } : {}),
  }));
}

/** Registration options (`enroll/begin`) for `navigator.credentials.create`. */
export function creationOptions(options: { publicKey: Json }): CredentialCreationOptions {
  const pk = options.publicKey;
  const user = (pk.user ?? {}) as Json;
  return {
    publicKey: {
      ...(pk as unknown as PublicKeyCredentialCreationOptions),
      challenge: bytes(pk.challenge, "the challenge"),
      user: {
        id: bytes(user.id, "the user id"),
        name: String(user.name ?? ""),
        displayName: String(user.displayName ?? user.name ?? ""),
      },
      excludeCredentials: descriptors(pk.excludeCredentials) ?? [],
    },
  };
}

/** Authentication options (login, approve, deny) for `navigator.credentials.get`. */
export function requestOptions(options: { publicKey: Json }): CredentialRequestOptions {
  const pk = options.publicKey;
  return {
    publicKey: {
      ...(pk as unknown as PublicKeyCredentialRequestOptions),
      challenge: bytes(pk.challenge, "the challenge"),
      allowCredentials: descriptors(pk.allowCredentials) ?? [],
    },
  };
}

/** A registration result as the API reads it. */
export function registrationJSON(credential: PublicKeyCredential): Json {
  const response = credential.response as AuthenticatorAttestationResponse;
  return {
    id: credential.id,
    rawId: bytesToB64url(credential.rawId),
    type: credential.type,
    response: {
      attestationObject: bytesToB64url(response.attestationObject),
      clientDataJSON: bytesToB64url(response.clientDataJSON),
    },
    extensions: credential.getClientExtensionResults?.() ?? {},
  };
}

/** An assertion as the API reads it. */
export function assertionJSON(credential: PublicKeyCredential): Json {
  const response = credential.response as AuthenticatorAssertionResponse;
  return {
    id: credential.id,
    rawId: bytesToB64url(credential.rawId),
    type: credential.type,
    response: {
      authenticatorData: bytesToB64url(response.authenticatorData),
      clientDataJSON: bytesToB64url(response.clientDataJSON),
      signature: bytesToB64url(response.signature),
      userHandle: response.userHandle ? bytesToB64url(response.userHandle) : null,
    },
    extensions: credential.getClientExtensionResults?.() ?? {},
  };
}

/** The browser's passkey API, replaceable in tests. */
export interface PasskeyDevice {
  create(options: CredentialCreationOptions): Promise<Credential | null>;
  get(options: CredentialRequestOptions): Promise<Credential | null>;
}

export const browserPasskeys: PasskeyDevice = {
  create: (o) => navigator.credentials.create(o),
  get: (o) => navigator.credentials.get(o),
};

/** Runs a passkey gesture, turning the browser's refusals into ApiErrors. */
export async function gesture(run: () => Promise<Credential | null>): Promise<PublicKeyCredential> {
  if (typeof window !== "undefined" && !("PublicKeyCredential" in window)) {
    throw new ApiError(
      CLIENT_CODES.passkeyUnsupported,
      0,
      "This browser does not support passkeys. Use a current browser on a device with a passkey.",
    );
  }
  let credential: Credential | null;
  try {
    credential = await run();
  } catch (e) {
    // DOMException is not an Error subclass everywhere: read its name.
    const name = typeof e === "object" && e !== null && "name" in e ? String((e as { name: unknown }).name) : "";
    if (name === "NotAllowedError" || name === "AbortError") {
      throw new ApiError(
        CLIENT_CODES.passkeyCancelled,
        0,
        "The passkey request was cancelled or timed out. Nothing was signed; try again.",
      );
    }
    throw new ApiError(
      "passkey_ceremony_failed",
      0,
      `The passkey could not be used: ${typeof e === "object" && e !== null && "message" in e ? String((e as { message: unknown }).message) : String(e)}`,
    );
  }
  if (!credential) {
    throw new ApiError(CLIENT_CODES.passkeyCancelled, 0, "No passkey was chosen. Nothing was signed.");
  }
  return credential as PublicKeyCredential;
}
