// Vite builds ui/ into ui/dist, which the Tauri crate embeds (src-tauri/tauri.conf.json:
// build.frontendDist). Vitest runs the unit tests (src/**/*.test.ts) in jsdom.
import { defineConfig } from "vitest/config";

export default defineConfig({
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // WebKitGTK 2.40+ (Debian 12) and current WebView2/WKWebView all run ES2021.
    target: "es2021",
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts"],
  },
});
