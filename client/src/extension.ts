/**
 * Shapelens for VS Code: starts the Shapelens language server in the user's Python (which has torch), shows
 * its state in the status bar, logs to the "Shapelens" output channel, and restarts it when the interpreter or
 * the workspace trust changes. Shapes, hovers, diagnostics and fixes all come from the server over LSP.
 */
import * as vscode from "vscode";
import { onActiveEnvironmentChange } from "./interpreter";
import { Notifier, ServerManager } from "./server";
import { LAUNCH_SETTINGS, SECTION } from "./settings";
import { StatusItem } from "./status";

let manager: ServerManager | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel("Shapelens", { log: true });
  const status = new StatusItem();
  const notifier = new Notifier(log);
  manager = new ServerManager(context, log, status, notifier);
  const servers = manager;
  context.subscriptions.push(log, status, servers);

  context.subscriptions.push(
    vscode.commands.registerCommand("shapelens.restartServer", () => servers.restart("restart requested")),
    vscode.commands.registerCommand("shapelens.showOutput", () => log.show(true)),
    vscode.commands.registerCommand("shapelens.traceNow", async (target?: vscode.Uri) => {
      const uri = target instanceof vscode.Uri ? target : vscode.window.activeTextEditor?.document.uri;
      if (!uri) {
        void vscode.window.showInformationMessage("Shapelens: open a Python file to trace.");
        return;
      }
      await servers.traceNow(uri);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      // Granting trust also reports the restricted settings as changed: restart only when the interpreter
      // really is another one (the trust restart itself is already queued).
      if (LAUNCH_SETTINGS.some((setting) => event.affectsConfiguration(setting))) {
        await servers.restartIfInterpreterChanged("shapelens.interpreter changed");
      }
      if (event.affectsConfiguration(SECTION)) {
        await servers.sendSettings();
      }
    }),
    // Trusting the workspace allows traces (and the workspace's own shapelens.interpreter): start afresh.
    vscode.workspace.onDidGrantWorkspaceTrust(() => servers.restart("workspace trusted")),
  );

  await servers.restart(vscode.workspace.isTrusted ? "activation" : "activation, untrusted workspace");

  // Watching the Python extension may wait for it to activate: do it after the server is up.
  void onActiveEnvironmentChange(log, () => {
    void servers.restartIfInterpreterChanged("Python environment changed");
  }).then((disposable) => context.subscriptions.push(disposable));
}

export async function deactivate(): Promise<void> {
  await manager?.close();
  manager = undefined;
}
