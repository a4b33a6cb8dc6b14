/**
 * Starts, restarts and stops the Shapelens language server (`<python> -m shapelens.cli serve` over stdio).
 * The server's pure-Python dependencies and the shapelens package ship inside the extension (dist/libs) and
 * go first on PYTHONPATH, so the user's interpreter only needs torch.
 */
import { execFile } from "child_process";
import * as path from "path";
import * as vscode from "vscode";
import {
  CloseAction,
  type CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorAction,
  type ErrorHandlerResult,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type ServerOptions,
  ShowMessageNotification,
  State,
} from "vscode-languageclient/node";
import { findExecutable, type Interpreter, resolveInterpreter } from "./interpreter";
import { stdioOptions } from "./serverLog";
import { enforceTrust, SECTION, serverSettings, withInterpreter } from "./settings";
import { STATUS_NOTIFICATION, type StatusItem, type StatusParams } from "./status";

/** The oldest Python the server runs on (pyproject's requires-python). */
const MIN_PYTHON = [3, 10];

/**
 * The environment of every Python the extension runs. PYTHONSAFEPATH=1 (Python 3.11+): `-m` and `-c` put no
 * folder in front of sys.path, so a workspace's `argparse.py`, `tokenize.py` or `shapelens/` never shadows
 * what the server imports. On 3.10, which ignores it, the working folder (never the workspace) is what
 * Python would put there: see `pythonCwd`.
 */
function pythonEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, ...extra, PYTHONSAFEPATH: "1" };
}

function describeSource(interpreter: Interpreter): string {
  return interpreter.source === "setting"
    ? "shapelens.interpreter"
    : interpreter.source === "python-extension"
      ? "the Python extension"
      : "the PATH";
}

/**
 * Runs the interpreter once before starting the server: a Python that does not start or is too old gets one
 * clear message instead of a language client failing to connect. Undefined when it is fine.
 */
function checkPython(executable: string, cwd: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(
      executable,
      ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
      { timeout: 20_000, cwd, env: pythonEnv({ PYTHONPATH: "" }) },
      (error, stdout, stderr) => {
        if (error) {
          resolve(`it failed to run (${(stderr || error.message).trim().split("\n").pop()}).`);
          return;
        }
        const [major, minor] = stdout.trim().split(".").map(Number);
        if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
          resolve(`it is Python ${stdout.trim()}, and the server needs ${MIN_PYTHON.join(".")} or newer.`);
          return;
        }
        resolve(undefined);
      },
    );
  });
}

/** Commands the client registers itself (with the active document as argument) instead of the server's. */
const CLIENT_COMMANDS = new Set(["shapelens.traceNow"]);
/** More crashes than this within CRASH_WINDOW_MS: stop restarting and say so once. */
const MAX_CRASHES = 3;
const CRASH_WINDOW_MS = 3 * 60_000;

/**
 * Shows each distinct message at most once per session: a missing interpreter, a missing torch or a crash loop
 * gets one pop-up, not one per restart. Everything is also logged.
 */
export class Notifier {
  private readonly shown = new Set<string>();

  constructor(private readonly log: vscode.LogOutputChannel) {}

  async once(
    kind: "error" | "warning" | "info",
    key: string,
    message: string,
    ...actions: string[]
  ): Promise<string | undefined> {
    this.log[kind === "warning" ? "warn" : kind](message);
    if (this.shown.has(key)) {
      return undefined;
    }
    this.shown.add(key);
    const show =
      kind === "error"
        ? vscode.window.showErrorMessage
        : kind === "warning"
          ? vscode.window.showWarningMessage
          : vscode.window.showInformationMessage;
    return show(message, ...actions);
  }
}

/** A LanguageClient whose own error pop-ups go through the Notifier (logged always, shown once). */
class ShapelensLanguageClient extends LanguageClient {
  constructor(
    id: string,
    name: string,
    serverOptions: ServerOptions,
    clientOptions: LanguageClientOptions,
    private readonly notifier: Notifier,
  ) {
    super(id, name, serverOptions, clientOptions);
    // The server may advertise `shapelens.traceNow`; the extension registers that command itself (it adds the
    // active document), so keep the generic executeCommand feature from registering it a second time.
    const feature = this.getFeature(ExecuteCommandRequest.method);
    const register = feature.register.bind(feature);
    feature.register = (data) => {
      const commands = (data.registerOptions.commands ?? []).filter((command) => !CLIENT_COMMANDS.has(command));
      register({ ...data, registerOptions: { ...data.registerOptions, commands } });
    };
  }

  public override error(message: string, data?: unknown, showNotification: boolean | "force" = true): void {
    super.error(message, data, false);
    if (showNotification === "force") {
      void this.notifier
        .once("error", "client-error", `Shapelens: ${message} See the output for details.`, "Show Output")
        .then((choice) => choice && this.outputChannel.show(true));
    }
  }
}

export class ServerManager implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private interpreter: Interpreter | undefined;
  /** The file the running server was started with (the settings' interpreter as the server must see it). */
  private executable: string | undefined;
  private queue: Promise<void> = Promise.resolve();
  private crashes: number[] = [];
  private disposed = false;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly log: vscode.LogOutputChannel,
    private readonly status: StatusItem,
    private readonly notifier: Notifier,
  ) {}

  /** The interpreter the running server uses (undefined before the first start). */
  get currentInterpreter(): Interpreter | undefined {
    return this.interpreter;
  }

  get running(): LanguageClient | undefined {
    return this.client?.state === State.Running ? this.client : undefined;
  }

  /** Stops the server if it runs and starts it again; calls are queued, never overlap. */
  restart(reason: string): Promise<void> {
    this.queue = this.queue.then(
      () => this.doRestart(reason),
      () => this.doRestart(reason),
    );
    return this.queue;
  }

  /** Restarts only if the interpreter that would be chosen now differs from the running one. */
  async restartIfInterpreterChanged(reason: string): Promise<void> {
    await this.queue.catch(() => undefined); // compare with what the queued restarts start
    const next = await resolveInterpreter(this.log, this.folder());
    if (next.command !== this.interpreter?.command) {
      await this.restart(reason);
    }
  }

  /** Pushes the live settings to the running server (the server may also pull them). */
  async sendSettings(): Promise<void> {
    const client = this.running;
    if (!client) {
      this.log.info("Settings changed; the server is not running, it gets them when it starts");
      return;
    }
    const settings = serverSettings(this.folder()?.uri, this.executable);
    this.log.info(`Settings changed; sending them to the server: ${JSON.stringify(settings)}`);
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings: { [SECTION]: settings } });
  }

  private folder(): vscode.WorkspaceFolder | undefined {
    const uri = vscode.window.activeTextEditor?.document.uri;
    return (uri && vscode.workspace.getWorkspaceFolder(uri)) ?? vscode.workspace.workspaceFolders?.[0];
  }

  private async doRestart(reason: string): Promise<void> {
    await this.stop();
    if (this.disposed) {
      return;
    }
    this.log.info(`Starting the server (${reason})`);
    this.status.set("starting", reason);
    const folder = this.folder();
    const interpreter = await resolveInterpreter(this.log, folder);
    this.interpreter = interpreter;
    this.status.setInterpreter(interpreter.command);
    const executable = findExecutable(interpreter.command);
    if (!executable) {
      const where =
        interpreter.source === "setting"
          ? `shapelens.interpreter is set to "${interpreter.command}", which does not exist or is not executable.`
          : interpreter.source === "python-extension"
            ? `The Python extension's environment "${interpreter.command}" does not exist.`
            : `No "${interpreter.command}" on the PATH.`;
      const message = `Shapelens: no Python interpreter to run the server. ${where} Select an interpreter with torch installed (Python: Select Interpreter) or set shapelens.interpreter.`;
      this.status.set("error", message);
      const choice = await this.notifier.once("error", "no-interpreter", message, "Open Settings", "Show Output");
      if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", "shapelens.interpreter");
      } else if (choice === "Show Output") {
        this.log.show(true);
      }
      return;
    }
    const problem = await checkPython(executable, this.pythonCwd());
    if (problem) {
      const message = `Shapelens: the interpreter ${executable} (from ${describeSource(interpreter)}) cannot run the server: ${problem} Select a Python ${MIN_PYTHON.join(".")}+ environment with torch (Python: Select Interpreter) or set shapelens.interpreter.`;
      this.status.set("error", message);
      const choice = await this.notifier.once("error", "bad-interpreter", message, "Open Settings", "Show Output");
      if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", "shapelens.interpreter");
      } else if (choice === "Show Output") {
        this.log.show(true);
      }
      return;
    }
    this.log.info(`Interpreter: ${executable} (from ${describeSource(interpreter)})`);
    this.executable = executable;
    const client = this.createClient(executable, folder);
    this.client = client;
    try {
      await client.start();
      this.log.info("Server started");
    } catch (error) {
      this.status.set("error", `The server did not start: ${String(error)}`);
    }
  }

  /**
   * Where every Python the extension runs starts: the extension's own dist folder, never the workspace (with
   * `-m` or `-c`, Python 3.10 puts its working folder first on sys.path; 3.11+ does not, see `pythonEnv`).
   */
  private pythonCwd(): string {
    return path.join(this.context.extensionPath, "dist");
  }

  private createClient(executable: string, folder: vscode.WorkspaceFolder | undefined): LanguageClient {
    const libs = path.join(this.context.extensionPath, "dist", "libs");
    const pythonPath = [libs, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
    const serverOptions: ServerOptions = {
      command: executable,
      // No `transport`: with TransportKind.stdio the client would append `--stdio` to the arguments.
      args: ["-m", "shapelens.cli", "serve"],
      // Never the workspace as working folder: see pythonCwd and pythonEnv.
      options: {
        cwd: this.pythonCwd(),
        env: pythonEnv({ PYTHONPATH: pythonPath, PYTHONUNBUFFERED: "1", PYTHONIOENCODING: "utf-8" }),
      },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "untitled", language: "python" },
      ],
      outputChannel: this.log,
      stdioOptions,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      // Read at each (re)start. `workspaceTrusted: false` is final for the server process: it never traces,
      // whatever a later configuration answer says (granting trust restarts the server).
      initializationOptions: () => {
        const options = {
          settings: serverSettings(folder?.uri, executable),
          workspaceTrusted: vscode.workspace.isTrusted,
        };
        this.log.info(`Initialization options: ${JSON.stringify(options)}`);
        return options;
      },
      errorHandler: {
        error: (): ErrorHandlerResult => ({ action: ErrorAction.Continue, handled: true }),
        closed: (): CloseHandlerResult => this.onClosed(),
      },
      middleware: {
        workspace: {
          // The server pulls its settings; an untrusted workspace always answers trusted = false.
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) {
              return result;
            }
            return result.map((value, index) =>
              withInterpreter(params.items[index]?.section, enforceTrust(params.items[index]?.section, value), executable),
            );
          },
        },
      },
    };
    const client = new ShapelensLanguageClient("shapelens", "Shapelens", serverOptions, clientOptions, this.notifier);
    client.onNotification(STATUS_NOTIFICATION, (params: StatusParams) => this.status.update(params));
    // The server sends a message (missing torch, for instance) on each start: show each one once per session.
    client.onNotification(ShowMessageNotification.type, (params) => {
      const kind = params.type === 1 ? "error" : params.type === 2 ? "warning" : "info";
      void this.notifier.once(kind, `server:${params.message}`, params.message);
    });
    client.onDidChangeState((event) => {
      if (event.newState === State.Stopped && this.client === client && this.status.current !== "error") {
        this.status.set("stopped", "The server is not running. Run “Shapelens: Restart Server” to start it.");
      }
    });
    return client;
  }

  private onClosed(): CloseHandlerResult {
    const now = Date.now();
    this.crashes = [...this.crashes.filter((time) => now - time < CRASH_WINDOW_MS), now];
    if (this.crashes.length > MAX_CRASHES) {
      const message = `Shapelens: the server stopped ${this.crashes.length} times in 3 minutes and will not be restarted. See the output for why; fix it, then run “Shapelens: Restart Server”.`;
      this.status.set("error", message);
      void this.notifier.once("error", "crash-loop", message, "Show Output").then((choice) => {
        if (choice) {
          this.log.show(true);
        }
      });
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    this.log.warn("The server stopped unexpectedly; restarting it");
    this.status.set("starting", "Restarting after the server stopped");
    return { action: CloseAction.Restart, handled: true };
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) {
      return;
    }
    try {
      if (client.needsStop()) {
        await client.stop(5_000);
      }
    } catch (error) {
      this.log.warn(`Stopping the server failed: ${String(error)}`);
    }
    try {
      await client.dispose(2_000);
    } catch {
      // Already stopped: nothing left to release.
    }
  }

  /** Runs `shapelens.traceNow` on the server for one document. */
  async traceNow(uri: vscode.Uri): Promise<void> {
    const client = this.running;
    if (!client) {
      void vscode.window.showWarningMessage("Shapelens: the server is not running (see the output).");
      return;
    }
    await client.sendRequest(ExecuteCommandRequest.type, {
      command: "shapelens.traceNow",
      arguments: [client.code2ProtocolConverter.asUri(uri)],
    });
  }

  dispose(): void {
    this.disposed = true;
    void this.stop();
  }
}
