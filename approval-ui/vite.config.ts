/// <reference types="vitest/config" />
// The approval UI is served by the operator under /approvals/ (same origin
// as the approval API, so cookies, CSRF and the WebAuthn RP ID just work).
// Built assets carry content hashes: the operator serves them immutable.
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  base: "/approvals/",
  plugins: [react()],
  build: {
    outDir: "dist",
    assetsDir: "assets",
    // No inline <script>, no data: URLs for assets: the operator's CSP
    // allows scripts, styles and images from 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: "es2022",
  },
  server: {
    // `npm run dev` proxies the API to a running `agentauth dev`.
    proxy: { "/approvals/api": "http://localhost:8080" },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
