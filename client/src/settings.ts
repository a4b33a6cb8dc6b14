/**
 * The `shapelens.*` settings as the server sees them. One place builds them for `initializationOptions`,
 * `workspace/didChangeConfiguration` and the answers to `workspace/configuration`, so the workspace-trust rule
 * (an untrusted workspace never runs code, whatever its settings say) is applied everywhere the same way.
 * The settings are declared once, in the server (`shapelens.lsp.settings`); tests/lsp/test_settings_schema.py
 * checks package.json's configuration and the defaults below against that declaration.
 */
import * as vscode from "vscode";

export const SECTION = "shapelens";

/** Settings whose change needs a new server process (a different interpreter); the others are sent live. */
export const LAUNCH_SETTINGS = ["shapelens.interpreter"];

export type Device = "meta" | "cpu" | "cuda";

export interface ServerSettings {
  device: Device;
  traceTimeout: number;
  debounceMs: number;
  inlayHints: { enabled: boolean; layerShapes: boolean; showDtype: boolean; symbolic: "on" | "off" };
  trusted: boolean;
  interpreter: string;
}

/**
 * The settings for one scope (a document or folder; the window when undefined), trust applied. `interpreter`
 * is the executable the server was started with (the setting may say `${workspaceFolder}/…` or be empty).
 */
export function serverSettings(scope?: vscode.ConfigurationScope | null, interpreter?: string): ServerSettings {
  const config = vscode.workspace.getConfiguration(SECTION, scope ?? null);
  return {
    device: config.get<Device>("device", "meta"),
    traceTimeout: config.get<number>("traceTimeout", 10),
    debounceMs: config.get<number>("debounceMs", 300),
    inlayHints: {
      enabled: config.get<boolean>("inlayHints.enabled", true),
      layerShapes: config.get<boolean>("inlayHints.layerShapes", true),
      showDtype: config.get<boolean>("inlayHints.showDtype", true),
      symbolic: config.get<"on" | "off">("inlayHints.symbolic", "on"),
    },
    trusted: vscode.workspace.isTrusted && config.get<boolean>("trusted", true),
    interpreter: interpreter ?? config.get<string>("interpreter", ""),
  };
}

/** Puts the resolved interpreter into a `workspace/configuration` answer for the section or the setting. */
export function withInterpreter(section: string | undefined, value: unknown, interpreter: string): unknown {
  if (section === `${SECTION}.interpreter`) {
    return interpreter;
  }
  if (section === SECTION && value && typeof value === "object") {
    return { ...(value as Record<string, unknown>), interpreter };
  }
  return value;
}

/**
 * A copy of a settings object without anything that could say `trusted`, at any depth: every key that names
 * `trusted` (`trusted`, `shapelens.trusted`, `inlayHints.trusted`) and every object under a key that names the
 * section again (`shapelens`, as VS Code answers `"shapelens.shapelens.trusted": true` in a workspace's
 * settings.json: `{shapelens: {trusted: true}}`, which the server reads as `shapelens.trusted`).
 */
function withoutTrust(value: unknown): unknown {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    return value;
  }
  const copy: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
    const parts = key.split(".");
    if (parts.includes("trusted") || (parts.includes(SECTION) && inner && typeof inner === "object")) {
      continue;
    }
    copy[key] = withoutTrust(inner);
  }
  return copy;
}

/**
 * Applies the trust rule to what VS Code answers for one `workspace/configuration` item: the whole
 * configuration, the section, a part of it, or the `shapelens.trusted` value itself. In an untrusted workspace
 * the answer says `trusted: false` once, at the top of the section, and nowhere else.
 */
export function enforceTrust(section: string | undefined, value: unknown): unknown {
  if (vscode.workspace.isTrusted) {
    return value;
  }
  if (section === `${SECTION}.trusted`) {
    return false;
  }
  const isObject = (candidate: unknown): candidate is Record<string, unknown> =>
    !!candidate && typeof candidate === "object" && !Array.isArray(candidate);
  if (section === SECTION) {
    return { ...(isObject(value) ? (withoutTrust(value) as Record<string, unknown>) : {}), trusted: false };
  }
  if (section === undefined || section === "") {
    if (!isObject(value)) {
      return value;
    }
    const ours = isObject(value[SECTION]) ? (withoutTrust(value[SECTION]) as Record<string, unknown>) : {};
    return { ...value, [SECTION]: { ...ours, trusted: false } };
  }
  if (section.startsWith(`${SECTION}.`)) {
    return withoutTrust(value);
  }
  return value;
}
