/**
 * Which Python runs the server: `shapelens.interpreter`, else the Python extension's active environment,
 * else `python3`. The Python extension is optional: every call into it is guarded, so Shapelens works the same
 * where it is not installed, disabled or fails to activate.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as vscode from "vscode";
import type { PythonExtension } from "@vscode/python-extension";

export type InterpreterSource = "setting" | "python-extension" | "default";

export interface Interpreter {
  /** The command to run: an absolute path, or a name looked up on the PATH. */
  command: string;
  source: InterpreterSource;
}

const PYTHON_EXTENSION_ID = "ms-python.python";
const DEFAULT_COMMAND = process.platform === "win32" ? "python" : "python3";
/** The Python extension can take long to activate; past this we go on without it. */
const ACTIVATION_TIMEOUT_MS = 15_000;

let pythonApi: Promise<PythonExtension | undefined> | undefined;

/** The Python extension's API, or undefined when it is absent or broken (asked once per session). */
export function getPythonApi(log: vscode.LogOutputChannel): Promise<PythonExtension | undefined> {
  if (!pythonApi) {
    pythonApi = (async () => {
      if (!vscode.extensions.getExtension(PYTHON_EXTENSION_ID)) {
        log.info("Python extension not installed: using shapelens.interpreter or python3");
        return undefined;
      }
      try {
        const { PythonExtension } = await import("@vscode/python-extension");
        const timeout = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ACTIVATION_TIMEOUT_MS));
        const api = await Promise.race([PythonExtension.api(), timeout]);
        if (!api) {
          log.warn("Python extension did not activate in time: using shapelens.interpreter or python3");
        }
        return api;
      } catch (error) {
        log.warn(`Python extension unavailable (${String(error)}): using shapelens.interpreter or python3`);
        return undefined;
      }
    })();
  }
  return pythonApi;
}

/** Expands `~`, `${userHome}`, `${workspaceFolder}` and resolves a relative path against the workspace. */
export function expandPath(value: string, folder: vscode.WorkspaceFolder | undefined): string {
  const folderPath = folder?.uri.fsPath ?? vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  let result = value.trim().replace(/\$\{userHome\}/g, os.homedir());
  if (folderPath) {
    result = result.replace(/\$\{workspaceFolder\}/g, folderPath);
  }
  if (result === "~" || result.startsWith("~/")) {
    result = path.join(os.homedir(), result.slice(1));
  }
  if (folderPath && (result.includes("/") || result.includes("\\")) && !path.isAbsolute(result)) {
    result = path.resolve(folderPath, result);
  }
  return result;
}

export async function resolveInterpreter(
  log: vscode.LogOutputChannel,
  folder: vscode.WorkspaceFolder | undefined,
): Promise<Interpreter> {
  const configured = vscode.workspace.getConfiguration("shapelens", folder ?? null).get<string>("interpreter", "");
  if (configured.trim()) {
    return { command: expandPath(configured, folder), source: "setting" };
  }
  const api = await getPythonApi(log);
  if (api) {
    try {
      const active = api.environments.getActiveEnvironmentPath(folder?.uri);
      const resolved = await api.environments.resolveEnvironment(active);
      const executable = resolved?.executable.uri?.fsPath;
      if (executable) {
        return { command: executable, source: "python-extension" };
      }
      log.warn(`Python extension: active environment ${active.path} did not resolve to an executable`);
    } catch (error) {
      log.warn(`Python extension: could not read the active environment (${String(error)})`);
    }
  }
  return { command: DEFAULT_COMMAND, source: "default" };
}

/** Calls `listener` when the Python extension's active environment changes; a no-op without the extension. */
export async function onActiveEnvironmentChange(
  log: vscode.LogOutputChannel,
  listener: () => void,
): Promise<vscode.Disposable> {
  const api = await getPythonApi(log);
  if (!api) {
    return new vscode.Disposable(() => undefined);
  }
  try {
    return api.environments.onDidChangeActiveEnvironmentPath(() => listener());
  } catch (error) {
    log.warn(`Python extension: cannot watch the active environment (${String(error)})`);
    return new vscode.Disposable(() => undefined);
  }
}

/** The file a command would run, or undefined when it does not exist (absolute path) or is not on the PATH. */
export function findExecutable(command: string): string | undefined {
  const isFile = (candidate: string): boolean => {
    try {
      const stat = fs.statSync(candidate);
      if (!stat.isFile()) {
        return false;
      }
      if (process.platform !== "win32") {
        fs.accessSync(candidate, fs.constants.X_OK);
      }
      return true;
    } catch {
      return false;
    }
  };
  if (path.isAbsolute(command) || command.includes("/") || command.includes("\\")) {
    return isFile(command) ? command : undefined;
  }
  const extensions = process.platform === "win32" ? ["", ".exe", ".cmd", ".bat"] : [""];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    for (const extension of extensions) {
      const candidate = path.join(dir, command + extension);
      if (dir && isFile(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}
