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
import { killProcessTree } from "./processTree";
import { stdioOptions } from "./serverLog";
import { enforceTrust, SECTION, serverSettings, withInterpreter } from "./settings";
import { STATUS_NOTIFICATION, type StatusItem, type StatusParams } from "./status";

/** The oldest Python the server runs on (pyproject's requires-python). */
const MIN_PYTHON = [3, 10];

/**
 * How long the server may take to answer `initialize` (Python start-up and the server's imports: a few
 * seconds). Past it the server is stopped and the user told. SHAPELENS_TEST_START_DEADLINE_MS may only shorten
 * it, for the tests.
 */
const START_DEADLINE_MS = 60_000;

function startDeadlineMs(): number {
  const forTests = Number(process.env.SHAPELENS_TEST_START_DEADLINE_MS);
  return Number.isFinite(forTests) && forTests > 0 ? Math.min(forTests, START_DEADLINE_MS) : START_DEADLINE_MS;
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

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

  /** Set when the extension gave up on this client (start-up deadline, stop while starting): it says why itself. */
  public abandoned = false;

  /**
   * An abandoned client that never ran has nothing to stop (its process tree is killed already); the base
   * class would throw "Client is not running and can't be stopped" (and log it after a failed initialize).
   */
  public override stop(timeout?: number): Promise<void> {
    if (this.abandoned && this.state !== State.Running) {
      return Promise.resolve();
    }
    return super.stop(timeout);
  }

  public override error(message: string, data?: unknown, showNotification: boolean | "force" = true): void {
    super.error(message, data, false);
    if (showNotification === "force" && !this.abandoned) {
      void this.notifier
        .once("error", "client-error", `Shapelens: ${message} See the output for details.`, "Show Output")
        .then((choice) => choice && this.outputChannel.show(true));
    }
  }
}

export class ServerManager implements vscode.Disposable {
  private client: ShapelensLanguageClient | undefined;
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
    if (this.client?.state === State.Starting) {
      // A start still waiting for `initialize` is given up on now (its process tree killed), not at its
      // deadline: the queued start below follows at once.
      void this.stop();
    }
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
      this.tellInterpreterProblem("no-interpreter", message);
      return;
    }
    const problem = await checkPython(executable, this.pythonCwd());
    if (this.disposed) {
      return;
    }
    if (problem) {
      const message = `Shapelens: the interpreter ${executable} (from ${describeSource(interpreter)}) cannot run the server: ${problem} Select a Python ${MIN_PYTHON.join(".")}+ environment with torch (Python: Select Interpreter) or set shapelens.interpreter.`;
      this.status.set("error", message);
      this.tellInterpreterProblem("bad-interpreter", message);
      return;
    }
    this.log.info(`Interpreter: ${executable} (from ${describeSource(interpreter)})`);
    this.executable = executable;
    const client = this.createClient(executable, folder);
    this.client = client;
    const deadline = startDeadlineMs();
    const outcome = await settleWithin(client.start(), deadline);
    if (this.client !== client) {
      return; // stopped (deactivation) while it was starting: that already ended it
    }
    if (outcome.kind === "started") {
      this.log.info("Server started");
      return;
    }
    if (outcome.kind === "failed") {
      this.status.set("error", `The server did not start: ${String(outcome.error)}`);
      return;
    }
    // No answer to `initialize`: a wrapper that never runs the server, an import that hangs. The client cannot
    // stop a server that is still starting, so end the process (and what it spawned) here.
    this.client = undefined;
    this.abandon(client, `no answer to initialize within ${formatSeconds(deadline)}`);
    const message = `Shapelens: the server did not start within ${formatSeconds(deadline)} with ${executable} (from ${describeSource(interpreter)}); it was stopped. Check that this Python runs “${executable} -m shapelens.cli serve” (the output may say where it hangs), then run “Shapelens: Restart Server”, or set shapelens.interpreter to another Python ${MIN_PYTHON.join(".")}+ with torch.`;
    this.status.set("error", message);
    this.tellInterpreterProblem("start-deadline", message);
  }

  /**
   * One message (per session) about the interpreter, with its actions. Not awaited: a restart queued behind
   * it (Restart Server, a changed setting) must not wait for the user to close the message.
   */
  private tellInterpreterProblem(key: string, message: string): void {
    void this.notifier.once("error", key, message, "Open Settings", "Show Output").then(async (choice) => {
      if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", "shapelens.interpreter");
      } else if (choice === "Show Output") {
        this.log.show(true);
      }
    });
  }

  /**
   * Where every Python the extension runs starts: the extension's own dist folder, never the workspace (with
   * `-m` or `-c`, Python 3.10 puts its working folder first on sys.path; 3.11+ does not, see `pythonEnv`).
   */
  private pythonCwd(): string {
    return path.join(this.context.extensionPath, "dist");
  }

  /** Gives up on a client that is not running: no restart, no pop-up of its own, its process tree killed. */
  private abandon(client: ShapelensLanguageClient, why: string, pid = client.serverProcess?.pid): void {
    client.abandoned = true;
    const killed = killProcessTree(pid);
    const tree = killed.join(", ");
    this.log.warn(`Stopping the server (${why}): killed process ${pid ?? "(none yet)"} and its tree [${tree}]`);
  }

  private createClient(executable: string, folder: vscode.WorkspaceFolder | undefined): ShapelensLanguageClient {
    const libs = path.join(this.context.extensionPath, "dist", "libs");
    const pythonPath = [libs, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
    const serverOptions: ServerOptions = {
      command: executable,
      // No `transport`: with TransportKind.stdio the client would append `--stdio` to the arguments.
      args: ["-m", "shapelens.cli", "serve"],
      // Never the workspace as working folder: see pythonCwd and pythonEnv.
      options: {
        cwd: this.pythonCwd(),
        // SHAPELENS_START_WORKER: in a trusted workspace the server starts its trace worker (torch's import,
        // seconds) first thing, beside its own start-up, rather than after `initialized`.
        env: pythonEnv({
          PYTHONPATH: pythonPath,
          PYTHONUNBUFFERED: "1",
          PYTHONIOENCODING: "utf-8",
          SHAPELENS_START_WORKER: vscode.workspace.isTrusted ? "1" : "0",
        }),
      },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "python" },
        { scheme: "untitled", language: "python" },
        // The Python cells of Jupyter notebooks: the server syncs each notebook whole (notebookDocument/*,
        // its cells traced as one program) and answers hints, hovers and code actions per cell.
        { notebook: "jupyter-notebook", language: "python" },
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
        closed: (): CloseHandlerResult =>
          client.abandoned ? { action: CloseAction.DoNotRestart, handled: true } : this.onClosed(),
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
    if (client.state === State.Starting) {
      // The language client cannot stop a server before it answered `initialize` (it throws and leaves the
      // process running): end the process tree instead.
      this.abandon(client, "stopped while starting");
      return;
    }
    if (client.state === State.Running) {
      const pid = client.serverProcess?.pid; // the client forgets it when stop() ends
      try {
        await client.stop(5_000);
      } catch (error) {
        this.log.warn(`Stopping the server failed: ${String(error)}`);
        this.abandon(client, "it did not stop in time", pid);
      }
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

  /** Stops for good (deactivation): a start still under way ends too, and nothing starts afterwards. */
  async close(): Promise<void> {
    this.disposed = true;
    await this.stop();
  }

  dispose(): void {
    void this.close();
  }
}

type StartOutcome = { kind: "started" } | { kind: "failed"; error: unknown } | { kind: "timeout" };

/** How `client.start()` ended within `ms` (its later rejection, after a timeout, is handled here too). */
function settleWithin(start: Promise<void>, ms: number): Promise<StartOutcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ kind: "timeout" }), ms);
    start.then(
      () => {
        clearTimeout(timer);
        resolve({ kind: "started" });
      },
      (error: unknown) => {
        clearTimeout(timer);
        resolve({ kind: "failed", error });
      },
    );
  });
}
