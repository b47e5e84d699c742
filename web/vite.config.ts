import tailwindcss from "@tailwindcss/vite";
import react from "@vitejs/plugin-react";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineConfig } from "vite";

const outDir = resolve(import.meta.dirname, "../services/controlplane/internal/console/dist");

// The build goes straight into the control plane's embedded assets
// (services/controlplane/internal/console/dist); `npm run dev` proxies the API to a
// control plane on 127.0.0.1:8080 (FLAGFORGE_API overrides it).
export default defineConfig({
  plugins: [
    react(),
    tailwindcss(),
    // emptyOutDir removes the committed placeholder that lets a clean clone embed
    // the folder before any build; put it back.
    { name: "keep-placeholder", closeBundle: () => writeFileSync(resolve(outDir, ".keep"), "") },
  ],
  build: {
    outDir,
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    proxy: { "/v1": process.env.FLAGFORGE_API ?? "http://127.0.0.1:8080" },
  },
});
