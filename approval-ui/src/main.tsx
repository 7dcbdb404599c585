import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { ApprovalApi } from "./api";
import { browserPasskeys } from "./webauthn";
import "./styles.css";

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App api={new ApprovalApi()} passkeys={browserPasskeys} />
    </StrictMode>,
  );
}
