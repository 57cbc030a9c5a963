// main.ts — the entry point: boots the app on Tauri's backend.
import "./style.css";
import { tauriBackend } from "./api";
import { boot } from "./app";

const root = document.getElementById("app");
if (root) {
  tauriBackend()
    .then((backend) => boot(backend, root))
    .catch((e) => {
      root.textContent = `Warren could not start its window: ${String(e)}`;
    });
}
