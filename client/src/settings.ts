/**
 * The `shapelens.*` settings as the server sees them. One place builds them for `initializationOptions`,
 * `workspace/didChangeConfiguration` and the answers to `workspace/configuration`, so the workspace-trust rule
 * (an untrusted workspace never runs code, whatever its settings say) is applied everywhere the same way.
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
  inlayHints: { enabled: boolean; layerShapes: boolean; showDtype: boolean };
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
 * Applies the trust rule to what VS Code answers for one `workspace/configuration` item: the whole section,
 * a nested object that holds `trusted`, or the `shapelens.trusted` value itself.
 */
export function enforceTrust(section: string | undefined, value: unknown): unknown {
  if (vscode.workspace.isTrusted) {
    return value;
  }
  if (section === `${SECTION}.trusted`) {
    return false;
  }
  if ((section === SECTION || section === undefined || section === "") && value && typeof value === "object") {
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    if (section === SECTION) {
      copy.trusted = false;
    } else if (copy[SECTION] && typeof copy[SECTION] === "object") {
      copy[SECTION] = { ...(copy[SECTION] as Record<string, unknown>), trusted: false };
    }
    return copy;
  }
  return value;
}
