import tailwindcss from "@tailwindcss/vite";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build goes straight into the control plane's embedded assets
// (services/controlplane/internal/console/dist); `npm run dev` proxies the API to a
// control plane on 127.0.0.1:8080 (FLAGFORGE_API overrides it).
export default defineConfig({
  plugins: [react(), tailwindcss()],
  build: {
    outDir: "../services/controlplane/internal/console/dist",
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    proxy: { "/v1": process.env.FLAGFORGE_API ?? "http://127.0.0.1:8080" },
  },
});
