/**
 * Ends a process and everything it started. The language client only kills the process it spawned, and only
 * after a clean stop; a server that never answered `initialize` (an interpreter that is a wrapper script, a
 * hung import) must not outlive the extension, and neither must what it spawned (a shell script's `sleep`
 * keeps the stdio pipes open, so the client would never even see the server close).
 */
import { execFileSync } from "child_process";
import * as fs from "fs";

/** Linux: the direct children of every process, from one scan of /proc. */
function procChildren(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return children;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
    const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  return children;
}

/** Elsewhere (macOS, BSD): `pgrep -P`, which exits 1 when there is no child. */
function pgrepChildren(pid: number): number[] {
  try {
    const out = execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8", timeout: 5_000 });
    return out.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The process and all its descendants, parents first. */
export function processTree(root: number): number[] {
  const scan = process.platform === "linux" ? procChildren() : undefined;
  const tree = [root];
  for (let i = 0; i < tree.length; i++) {
    for (const child of scan ? (scan.get(tree[i]) ?? []) : pgrepChildren(tree[i])) {
      if (!tree.includes(child)) {
        tree.push(child);
      }
    }
  }
  return tree;
}

function signal(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false; // gone already, or not ours
  }
}

/**
 * SIGKILLs `root` and its descendants. The tree is frozen first (SIGSTOP) and listed again until no new
 * process appears, so nothing forks its way out between the listing and the kill. Returns the pids signalled.
 */
export function killProcessTree(root: number | undefined): number[] {
  if (root === undefined || root <= 0) {
    return [];
  }
  if (process.platform === "win32") {
    try {
      execFileSync("taskkill", ["/T", "/F", "/PID", String(root)], { stdio: "ignore", timeout: 10_000 });
    } catch {
      // Already gone.
    }
    return [root];
  }
  let tree: number[] = [];
  for (let round = 0; round < 5; round++) {
    const next = processTree(root);
    next.forEach((pid) => signal(pid, "SIGSTOP"));
    const grew = next.some((pid) => !tree.includes(pid));
    tree = [...new Set([...tree, ...next])];
    if (!grew) {
      break;
    }
  }
  tree.forEach((pid) => signal(pid, "SIGKILL"));
  return tree;
}
