/**
 * The status bar item: what the server is doing (starting, idle, tracing, error, untrusted) and how long the
 * last trace took. Clicking it opens the output channel. Problems are shown here, not in pop-ups.
 */
import * as vscode from "vscode";

export type ServerState = "starting" | "idle" | "tracing" | "error" | "untrusted" | "stopped";

/** The payload of the server's `shapelens/status` notification. */
export interface StatusParams {
  state: "starting" | "idle" | "tracing" | "error" | "untrusted";
  message: string;
  elapsedMs: number | null;
  uri: string | null;
  torch: string | null;
}

export const STATUS_NOTIFICATION = "shapelens/status";

export class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private state: ServerState = "starting";
  private message = "";
  private lastElapsedMs: number | null = null;
  private torch: string | null = null;
  private interpreter = "";

  constructor() {
    this.item = vscode.window.createStatusBarItem("shapelens.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "Shapelens";
    this.item.command = "shapelens.showOutput";
    this.disposables.push(
      vscode.window.onDidChangeActiveTextEditor(() => this.updateVisibility()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.updateVisibility()),
    );
    this.render();
  }

  setInterpreter(command: string): void {
    this.interpreter = command;
    this.render();
  }

  /** A state the client knows by itself (starting, stopped, a launch error). */
  set(state: ServerState, message: string): void {
    this.state = state;
    this.message = message;
    if (state === "starting") {
      this.lastElapsedMs = null;
      this.torch = null;
    }
    this.render();
  }

  /** A `shapelens/status` notification from the server. */
  update(params: StatusParams): void {
    this.state = params.state;
    this.message = params.message ?? "";
    if (params.torch !== undefined) {
      this.torch = params.torch;
    }
    if (params.state === "idle" && typeof params.elapsedMs === "number") {
      this.lastElapsedMs = params.elapsedMs;
    }
    this.render();
  }

  get current(): ServerState {
    return this.state;
  }

  private render(): void {
    const item = this.item;
    item.backgroundColor = undefined;
    switch (this.state) {
      case "starting":
        item.text = "$(loading~spin) Shapelens";
        break;
      case "tracing":
        item.text = "$(sync~spin) tracing…";
        break;
      case "idle":
        item.text = this.lastElapsedMs === null ? "$(pulse) Shapelens" : `$(pulse) ${formatMs(this.lastElapsedMs)}`;
        break;
      case "untrusted":
        item.text = "$(shield) Shapelens";
        break;
      case "error":
        item.text = "$(warning) Shapelens";
        item.backgroundColor = new vscode.ThemeColor("statusBarItem.warningBackground");
        break;
      case "stopped":
        item.text = "$(circle-slash) Shapelens";
        break;
    }
    const tooltip = new vscode.MarkdownString(undefined, true);
    tooltip.appendMarkdown(`**Shapelens**: ${describe(this.state)}`);
    if (this.message) {
      tooltip.appendMarkdown("\n\n");
      tooltip.appendText(this.message);
    }
    if (this.state === "idle" && this.lastElapsedMs !== null) {
      tooltip.appendMarkdown(`\n\nLast trace: ${formatMs(this.lastElapsedMs)}`);
    }
    if (this.interpreter) {
      tooltip.appendMarkdown("\n\nInterpreter: ");
      tooltip.appendText(this.interpreter);
    }
    if (this.torch) {
      tooltip.appendMarkdown("\n\ntorch ");
      tooltip.appendText(this.torch);
    }
    tooltip.appendMarkdown("\n\n*Click to show the output.*");
    item.tooltip = tooltip;
    item.accessibilityInformation = { label: `Shapelens: ${describe(this.state)}. ${this.message}` };
    this.updateVisibility();
  }

  private updateVisibility(): void {
    // Shown while a Python file is in view (focus may be in a panel or a modal editor), and for problems.
    const python = vscode.window.visibleTextEditors.some((editor) => editor.document.languageId === "python");
    if (python || this.state === "error") {
      this.item.show();
    } else {
      this.item.hide();
    }
  }

  dispose(): void {
    this.item.dispose();
    this.disposables.forEach((d) => d.dispose());
  }
}

function formatMs(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

function describe(state: ServerState): string {
  switch (state) {
    case "starting":
      return "starting";
    case "idle":
      return "ready";
    case "tracing":
      return "tracing";
    case "untrusted":
      return "untrusted workspace: static checks only, no code runs";
    case "error":
      return "problem";
    case "stopped":
      return "server stopped";
  }
}
