// From VS Code settings to what the server receives: initializationOptions, didChangeConfiguration, the
// command line and environment. No `vscode` import: the Node protocol test builds its initialize request
// with these very functions.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The settings section; the server takes `{"codellama": {...}}` in both initialize and didChangeConfiguration. */
export const SECTION = 'codellama';

/** Environment variable through which the API token reaches the server (never a setting, never a message). */
export const TOKEN_ENV = 'CODELLAMA_LSP_API_TOKEN';

/**
 * The server's settings (lsp/config.py), by their camelCase wire names. Dotted names nest: `completion.enable`
 * is `{"completion": {"enable": ...}}`. The API token is deliberately absent.
 */
export const SERVER_SETTINGS = [
    'backend',
    'endpoint',
    'model',
    'localModelPath',
    'maxNewTokens',
    'temperature',
    'topP',
    'stop',
    'requestTimeout',
    'connectTimeout',
    'maxRetries',
    'promptsPath',
    'tokenizer',
    'maxInputTokens',
    'maxTotalTokens',
    'verifyTls',
    'caBundle',
    'proxy',
    'logLevel',
    'logFile',
    'completion.enable',
    'completion.disabledLanguages',
    'completion.debounceMs',
    'completion.maxLines',
    'completion.maxNewTokens',
    'completion.temperature',
    'workspace.enable',
    'workspace.maxFiles',
    'workspace.maxFileSize',
    'workspace.maxTotalSize',
    'workspace.exclude',
] as const;

/** Settings that only the extension reads. */
export const CLIENT_SETTINGS = ['serverPath', 'serverArgs', 'completion.suggestions', 'trace.server'] as const;

/** Settings holding a file or folder path: `~` and `${workspaceFolder}` are expanded before sending. */
const PATH_SETTINGS: ReadonlySet<string> = new Set(['localModelPath', 'promptsPath', 'tokenizer', 'logFile', 'caBundle']);

/** Reads one setting by its name under `codellama.` (what `workspace.getConfiguration('codellama').get` does). */
export type SettingGetter = (key: string) => unknown;

export interface PathContext {
    home?: string;
    workspaceFolder?: string;
}

export type ServerSettings = Record<string, unknown>;

export interface InitializationOptions {
    codellama: ServerSettings;
    /** Ask the server for codellama/partial notifications (answers as they are written). */
    streaming?: boolean;
}

/**
 * `{"codellama": {...}}` from the settings: unset values (null, empty strings) are left out so that the
 * server's own defaults and environment apply; paths are expanded.
 */
export function buildInitializationOptions(get: SettingGetter, context: PathContext = {}): InitializationOptions {
    const out: ServerSettings = {};
    for (const key of SERVER_SETTINGS) {
        let value = get(key);
        if (value === undefined || value === null) {
            continue;
        }
        if (typeof value === 'string') {
            value = value.trim();
            if (value === '') {
                continue;
            }
            if (PATH_SETTINGS.has(key)) {
                value = expandPath(value as string, context);
            }
        }
        setNested(out, key.split('.'), value);
    }
    return { codellama: out };
}

/** The params of workspace/didChangeConfiguration: the same object as the initialization options. */
export function buildDidChangeConfiguration(get: SettingGetter, context: PathContext = {}): { settings: InitializationOptions } {
    return { settings: buildInitializationOptions(get, context) };
}

function setNested(target: ServerSettings, keys: string[], value: unknown): void {
    let node = target;
    for (const key of keys.slice(0, -1)) {
        const next = node[key];
        if (typeof next !== 'object' || next === null) {
            node[key] = {};
        }
        node = node[key] as ServerSettings;
    }
    node[keys[keys.length - 1]] = value;
}

export function expandPath(value: string, context: PathContext = {}): string {
    const home = context.home ?? os.homedir();
    let out = value;
    if (context.workspaceFolder !== undefined) {
        out = out.split('${workspaceFolder}').join(context.workspaceFolder);
    }
    if (out === '~') {
        return home;
    }
    if (out.startsWith('~/') || out.startsWith('~\\')) {
        return path.join(home, out.slice(2));
    }
    return out;
}

export const DEFAULT_SERVER_PATH = 'codellama-lsp';
export const DEFAULT_SERVER_ARGS: readonly string[] = ['serve'];

export interface ServerCommand {
    command: string;
    args: string[];
    env: Record<string, string | undefined>;
}

/** The process to start: `codellama.serverPath` (default `codellama-lsp`) with `codellama.serverArgs`. */
export function buildServerCommand(
    get: SettingGetter,
    token: string | undefined,
    baseEnv: Record<string, string | undefined> = process.env,
    context: PathContext = {},
): ServerCommand {
    const rawPath = get('serverPath');
    const command =
        typeof rawPath === 'string' && rawPath.trim() ? expandPath(rawPath.trim(), context) : DEFAULT_SERVER_PATH;
    const rawArgs = get('serverArgs');
    const args = Array.isArray(rawArgs)
        ? rawArgs.filter((a): a is string => typeof a === 'string').map((a) => expandPath(a, context))
        : [...DEFAULT_SERVER_ARGS];
    const env: Record<string, string | undefined> = { ...baseEnv };
    if (token) {
        env[TOKEN_ENV] = token;
    }
    return { command, args, env };
}

/**
 * Where `command` would be found, like a shell does: a path is checked as is, a bare name on PATH
 * (with PATHEXT on Windows). Undefined when it isn't there, so the extension can say so clearly.
 */
export function findExecutable(
    command: string,
    env: Record<string, string | undefined> = process.env,
    platform: NodeJS.Platform = process.platform,
): string | undefined {
    const isFile = (candidate: string): boolean => {
        try {
            const stat = fs.statSync(candidate);
            if (!stat.isFile()) {
                return false;
            }
            if (platform !== 'win32') {
                fs.accessSync(candidate, fs.constants.X_OK);
            }
            return true;
        } catch {
            return false;
        }
    };
    const extensions =
        platform === 'win32' ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';').filter(Boolean)] : [''];
    const withExtensions = (base: string): string | undefined =>
        extensions.map((ext) => base + ext).find((candidate) => isFile(candidate));
    if (command.includes('/') || (platform === 'win32' && command.includes('\\'))) {
        return withExtensions(command);
    }
    const separator = platform === 'win32' ? ';' : path.delimiter;
    const searchPath = env.PATH ?? env.Path ?? '';
    for (const dir of searchPath.split(separator)) {
        if (!dir) {
            continue;
        }
        const found = withExtensions(path.join(dir, command));
        if (found) {
            return found;
        }
    }
    return undefined;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/**
 * One line of the server's stderr log (`2024-05-01 12:00:00,123 INFO lsp.server: message`, see lsp/log.py)
 * as a level and the text without the timestamp, which the output channel adds itself. Other lines (a
 * traceback, a crash) keep their text and count as errors.
 */
export function parseServerLogLine(line: string): { level: LogLevel; text: string } {
    const match = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)? (DEBUG|INFO|WARNING|ERROR|CRITICAL) (.*)$/.exec(line);
    if (!match) {
        return { level: 'error', text: line };
    }
    const levels: Record<string, LogLevel> = {
        DEBUG: 'debug',
        INFO: 'info',
        WARNING: 'warn',
        ERROR: 'error',
        CRITICAL: 'error',
    };
    return { level: levels[match[1]] ?? 'info', text: match[2] };
}
