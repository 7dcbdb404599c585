import { describe, expect, it } from "vitest";
import { assertionJSON, b64urlToBytes, bytesToB64url, creationOptions, gesture, requestOptions } from "./webauthn";

describe("webauthn JSON", () => {
  it("round-trips base64url without padding", () => {
    for (const bytes of [[], [0], [255, 254], [1, 2, 3, 4, 5], Array.from({ length: 33 }, (_, i) => i * 7)]) {
      const text = bytesToB64url(new Uint8Array(bytes));
      expect(text).not.toMatch(/[+/=]/);
      expect(Array.from(b64urlToBytes(text))).toEqual(bytes);
    }
  });

  it("decodes the challenge, user id and credential ids of the server's options", () => {
    const create = creationOptions({
      publicKey: {
        challenge: "AAEC",
        rp: { id: "localhost", name: "AgentAuth" },
        user: { id: "BAUG", name: "dana@example.com", displayName: "Dana" },
        excludeCredentials: [{ type: "public-key", id: "BwgJ" }],
      },
    });
    expect(Array.from(create.publicKey!.challenge as Uint8Array)).toEqual([0, 1, 2]);
    expect(Array.from(create.publicKey!.user.id as Uint8Array)).toEqual([4, 5, 6]);
    expect(Array.from(create.publicKey!.excludeCredentials![0]!.id as Uint8Array)).toEqual([7, 8, 9]);
    const get = requestOptions({
      publicKey: { challenge: "AAEC", rpId: "localhost", allowCredentials: [{ type: "public-key", id: "BwgJ" }], userVerification: "required" },
    });
    expect(get.publicKey!.userVerification).toBe("required");
    expect(Array.from(get.publicKey!.allowCredentials![0]!.id as Uint8Array)).toEqual([7, 8, 9]);
  });

  it("encodes an assertion as the API reads it", () => {
    const b = (...x: number[]) => new Uint8Array(x).buffer;
    const json = assertionJSON({
      id: "AQ",
      rawId: b(1),
      type: "public-key",
      getClientExtensionResults: () => ({}),
      response: { authenticatorData: b(2), clientDataJSON: b(3), signature: b(4), userHandle: null },
    } as unknown as PublicKeyCredential);
    expect(json).toEqual({
      id: "AQ",
      rawId: "AQ",
      type: "public-key",
      response: { authenticatorData: "Ag", clientDataJSON: "Aw", signature: "BA", userHandle: null },
      extensions: {},
    });
  });

  it("reports a cancelled gesture as passkey_cancelled", async () => {
    Object.assign(window, { PublicKeyCredential: function PublicKeyCredential() {} });
    const cancelled = gesture(async () => {
      throw new DOMException("The operation either timed out or was not allowed.", "NotAllowedError");
    });
    await expect(cancelled).rejects.toMatchObject({ code: "passkey_cancelled" });
  });
});
