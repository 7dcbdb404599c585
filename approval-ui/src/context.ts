import { createContext, useContext } from "react";
import type { ApprovalApi } from "./api";
import type { PasskeyDevice } from "./webauthn";

export interface Services {
  api: ApprovalApi;
  passkeys: PasskeyDevice;
  /** The signed-in approver, or null. */
  approver: string | null;
  /** Called when the API says the session is gone (`session_invalid`). */
  sessionEnded: () => void;
  /** Called after a login. */
  signedIn: (approver: string) => void;
}

export const ServicesContext = createContext<Services | null>(null);

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (!services) throw new Error("useServices outside <App>");
  return services;
}
