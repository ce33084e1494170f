// The codellama-lsp wire protocol as the extension uses it: method and command names, argument and
// result shapes, and small pure helpers over them. No `vscode` import: the Node protocol test reuses it.

/** Server -> client notification with the model's state. */
export const STATUS_METHOD = 'codellama/status';

/**
 * Server -> client notification with the answer so far while an action runs (sent only because the
 * extension asks for it with `initializationOptions.streaming`). `text` is the whole reply so far.
 */
export const PARTIAL_METHOD = 'codellama/partial';

/** workspace/executeCommand commands the server implements. */
export const RUN_COMMAND = 'codellama.run';
export const TOGGLE_COMPLETIONS_COMMAND = 'codellama.toggleCompletions';
/** Carried by the resolved "Explain" code action; the extension handles it itself. */
export const SHOW_EXPLANATION_COMMAND = 'codellama.showExplanation';
export const REVIEW_PROPOSAL_COMMAND = 'codellama.reviewProposal';

export type ServerState = 'idle' | 'busy' | 'error';

export interface StatusParams {
    state: ServerState;
    message: string;
    /** The model name, or the backend's name; null until the first request created a backend. */
    backend: string | null;
}

export interface PartialParams {
    /** The action's work-done progress token. */
    token: string;
    action: RunAction | null;
    title: string;
    uri: string | null;
    text: string;
    done: boolean;
    outcome?: 'done' | 'failed' | 'cancelled';
}

export interface WirePosition {
    line: number;
    character: number;
}

export interface WireRange {
    start: WirePosition;
    end: WirePosition;
}

export type RunAction = 'explain' | 'refactor' | 'docstring' | 'tests' | 'fix' | 'ask';

export interface RunArgs {
    action: RunAction;
    uri: string;
    range: WireRange;
    instruction?: string;
    /** Code results: apply them with workspace/applyEdit (the server asks first when they don't parse). */
    apply?: boolean;
    /** Markdown results: let the server show them with window/showDocument. The extension says false. */
    show?: boolean;
}

export interface RunResult {
    action: RunAction;
    kind: 'markdown' | 'code';
    text: string;
    uri: string;
    version: number;
    range: WireRange;
    parses: boolean | null;
    applied?: boolean;
}

export interface Explanation {
    title: string;
    markdown: string;
    uri?: string;
    range?: WireRange;
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPosition(value: unknown): value is WirePosition {
    return isObject(value) && typeof value.line === 'number' && typeof value.character === 'number';
}

export function isRange(value: unknown): value is WireRange {
    return isObject(value) && isPosition(value.start) && isPosition(value.end);
}

/** The explanation carried by a `codellama.showExplanation` command's arguments, if they hold one. */
export function explanationFromArgs(args: readonly unknown[] | undefined): Explanation | undefined {
    const first: unknown = args?.[0];
    if (!isObject(first) || typeof first.markdown !== 'string') {
        return undefined;
    }
    return {
        title: typeof first.title === 'string' && first.title ? first.title : 'Explanation',
        markdown: first.markdown,
        uri: typeof first.uri === 'string' ? first.uri : undefined,
        range: isRange(first.range) ? first.range : undefined,
    };
}

export function isStatusParams(value: unknown): value is StatusParams {
    return (
        isObject(value) &&
        (value.state === 'idle' || value.state === 'busy' || value.state === 'error') &&
        (value.backend === null || value.backend === undefined || typeof value.backend === 'string')
    );
}

export function isPartialParams(value: unknown): value is PartialParams {
    return (
        isObject(value) &&
        typeof value.token === 'string' &&
        typeof value.text === 'string' &&
        typeof value.done === 'boolean'
    );
}

/** Explanations and answers stream into their view; code (refactor, docstring, ...) into a preview. */
export function isMarkdownAction(action: RunAction | null): boolean {
    return action === 'explain' || action === 'ask';
}

export function isRunResult(value: unknown): value is RunResult {
    return (
        isObject(value) &&
        (value.kind === 'markdown' || value.kind === 'code') &&
        typeof value.text === 'string' &&
        typeof value.uri === 'string'
    );
}

/** The markdown document shown for an explanation: a heading, where it came from, the text. */
export function explanationMarkdown(explanation: Explanation): string {
    const lines = [`# ${explanation.title}`, ''];
    if (explanation.uri) {
        const name = decodeURIComponent(explanation.uri.replace(/^.*\//, ''));
        const r = explanation.range;
        // A range that ends at the start of a line does not include that line.
        const last = r && r.end.character === 0 && r.end.line > r.start.line ? r.end.line : (r?.end.line ?? 0) + 1;
        const where = r ? (last > r.start.line + 1 ? `${name}, lines ${r.start.line + 1}–${last}` : `${name}, line ${last}`) : name;
        lines.push(`*${where}*`, '');
    }
    lines.push(explanation.markdown.trimEnd(), '');
    return lines.join('\n');
}
