/**
 * The server's stderr into the "Shapelens" log channel at the right level. The server logs with Python's
 * `logging` ("2026-01-01 12:00:00,123 INFO shapelens.lsp: message"); the language client would log every
 * stderr line as an error. Lines that continue a record (a traceback) keep that record's level; anything
 * that is not a log record (Python dying before logging starts) is an error.
 */
import * as readline from "readline";
import type * as stream from "stream";
import type * as vscode from "vscode";

const RECORD = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?\s+(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\s+(.*)$/;

type Level = "trace" | "debug" | "info" | "warn" | "error";

export function levelOf(name: string): Level {
  switch (name) {
    case "DEBUG":
      return "debug";
    case "INFO":
      return "info";
    case "WARNING":
    case "WARN":
      return "warn";
    default:
      return "error";
  }
}

/** Parses one stderr line: the level and the text to log (the server's own timestamp dropped). */
export function parseLine(line: string, previous: Level | undefined): { level: Level; text: string } {
  const match = RECORD.exec(line);
  if (match) {
    return { level: levelOf(match[1]), text: match[2] };
  }
  // An uncaught exception's traceback is an error whatever came before it.
  return { level: line.startsWith("Traceback ") ? "error" : (previous ?? "error"), text: line };
}

function lines(input: stream.Readable, onLine: (line: string) => void): void {
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on("line", onLine);
}

export const stdioOptions = {
  stdout: (input: stream.Readable, channel: vscode.LogOutputChannel): void => {
    lines(input, (line) => channel.info(line));
  },
  stderr: (input: stream.Readable, channel: vscode.LogOutputChannel): void => {
    let previous: Level | undefined;
    lines(input, (line) => {
      const { level, text } = parseLine(line, previous);
      previous = level;
      channel[level](text);
    });
  },
};
