// Explanations and answers are markdown: shown as a read-only virtual document beside the code. Nothing
// is written to disk and nothing asks to be saved on close.
//
// While an action runs, the server streams its answer so far (codellama/partial) into an editor beside the
// code, opened as the work begins (so that it is ready by the first words). While the text grows it is
// plain text: every update of a virtual document goes through the workbench (a diff in the editor worker,
// then the editor's render), and a markdown document adds its grammar's tokenization to each, seconds the
// first time on a cold workbench, before the first words could show. Once the answer is complete the view
// becomes markdown, and an explanation's final answer replaces the text in place; a refactoring's preview
// closes when the edit is offered.

import * as vscode from 'vscode';
import { Explanation, explanationMarkdown, isMarkdownAction, PartialParams } from './protocol';

export const EXPLANATION_SCHEME = 'codellama-explanation';
const KEEP = 20;
/** How long a finished stream waits for its final answer to take its place (the answer follows at once). */
const AWAIT_FINAL_MS = 30_000;

interface LiveView {
    uri: vscode.Uri;
    title: string;
    /** An explanation or answer (markdown once complete), else a code preview. */
    markdown: boolean;
    /** Settles once its editor is shown (or could not be). */
    opened: Promise<void>;
}

export class ExplanationView implements vscode.TextDocumentContentProvider, vscode.Disposable {
    private readonly contents = new Map<string, string>();
    private readonly changed = new vscode.EventEmitter<vscode.Uri>();
    readonly onDidChange = this.changed.event;
    private readonly registration: vscode.Disposable;
    private readonly live = new Map<string, LiveView>();
    private awaiting: { view: LiveView; until: number } | undefined;
    private counter = 0;

    constructor(private readonly log: vscode.LogOutputChannel) {
        this.registration = vscode.workspace.registerTextDocumentContentProvider(EXPLANATION_SCHEME, this);
    }

    provideTextDocumentContent(uri: vscode.Uri): string {
        return this.contents.get(uri.toString()) ?? '*This explanation is no longer available.*\n';
    }

    /**
     * What the first live view would otherwise wait for, done once in the background: the built-in
     * markdown extension's activation, and the editor worker that VS Code starts to apply a virtual
     * document's first change (seconds, the first time, on a busy machine: the first words would wait).
     */
    async warmUp(): Promise<void> {
        const uri = vscode.Uri.from({ scheme: EXPLANATION_SCHEME, path: '/warm-up.md' });
        try {
            this.contents.set(uri.toString(), '');
            await vscode.workspace.openTextDocument(uri);
            this.set(uri, '\n');
        } catch (error) {
            this.log.debug(`warming up the explanation view: ${String(error)}`);
        } finally {
            this.contents.delete(uri.toString());
        }
    }

    /** A codellama/partial notification: open the live view with the first words, then grow it. */
    partial(params: PartialParams): void {
        let view = this.live.get(params.token);
        if (view === undefined) {
            if (params.done) {
                return;
            }
            const markdown = isMarkdownAction(params.action);
            const name = markdown ? params.title : `${params.title} (preview)`;
            const uri = this.newUri(name, '');
            this.set(uri, liveMarkdown(params.title, params.text, undefined));
            // Updates that arrive while the editor opens can be missed by it (VS Code reads a virtual
            // document's changes only once it has loaded it): once it is shown, it reads the text again.
            const opened = this.open(uri, 'text').then(() => this.changed.fire(uri));
            view = { uri, title: params.title, markdown, opened };
            this.live.set(params.token, view);
        } else {
            this.set(view.uri, liveMarkdown(view.title, params.text, params.done ? params.outcome ?? 'done' : undefined));
        }
        if (params.done) {
            this.live.delete(params.token);
            if (view.markdown) {
                void this.renderMarkdown(view);
                if (params.outcome === 'done') {
                    this.awaiting = { view, until: Date.now() + AWAIT_FINAL_MS };
                }
            } else {
                void this.close(view);
            }
        }
    }

    async show(explanation: Explanation): Promise<void> {
        const awaiting = this.awaiting;
        this.awaiting = undefined;
        if (awaiting && Date.now() < awaiting.until) {
            // The streamed view is already on screen: the final text takes its place there.
            this.set(awaiting.view.uri, explanationMarkdown(explanation));
            return;
        }
        const uri = this.newUri(explanation.title, '.md');
        this.set(uri, explanationMarkdown(explanation));
        await this.open(uri, 'preview');
    }

    /** A new document's URI; `extension` '.md' makes it markdown from the start, '' plain text. */
    private newUri(title: string, extension: '' | '.md'): vscode.Uri {
        this.counter += 1;
        const name = title.replace(/[^\w. ()-]+/g, '-').trim() || 'Explanation';
        return vscode.Uri.from({ scheme: EXPLANATION_SCHEME, path: `/${name}${extension}`, query: String(this.counter) });
    }

    private set(uri: vscode.Uri, text: string): void {
        const key = uri.toString();
        const known = this.contents.has(key);
        this.contents.set(key, text);
        while (this.contents.size > KEEP) {
            const oldest = this.contents.keys().next().value;
            if (oldest === undefined) {
                break;
            }
            this.contents.delete(oldest);
        }
        if (known) {
            this.changed.fire(uri);
        }
    }

    /**
     * 'preview': markdown in the built-in preview (it reads the document through this provider), or as
     * markdown source where the preview is unavailable; 'text': an editor showing the document as it is.
     */
    private async open(uri: vscode.Uri, how: 'preview' | 'text'): Promise<void> {
        if (how === 'preview') {
            try {
                await vscode.commands.executeCommand('markdown.showPreviewToSide', uri);
                return;
            } catch (error) {
                this.log.warn(`markdown preview unavailable (${String(error)}); showing the markdown source`);
            }
        }
        try {
            const doc = await vscode.workspace.openTextDocument(uri);
            if (how === 'preview') {
                await vscode.languages.setTextDocumentLanguage(doc, 'markdown');
            }
            await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true });
        } catch (error) {
            this.log.warn(`could not show ${uri.path}: ${String(error)}`);
        }
    }

    /** A live view whose answer is complete: from plain text to markdown (highlighted, with its outline). */
    private async renderMarkdown(view: LiveView): Promise<void> {
        await view.opened;
        const key = view.uri.toString();
        const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === key);
        if (doc === undefined || doc.languageId === 'markdown') {
            return;
        }
        try {
            await vscode.languages.setTextDocumentLanguage(doc, 'markdown');
        } catch (error) {
            this.log.debug(`the explanation stays plain text: ${String(error)}`);
        }
    }

    /** Closes a code preview's editor once the edit it previewed is offered (a quick answer can be complete
     * before its editor is shown: then once it is shown). */
    private async close(view: LiveView): Promise<void> {
        await view.opened;
        const key = view.uri.toString();
        const tabs = vscode.window.tabGroups.all
            .flatMap((group) => group.tabs)
            .filter((tab) => tab.input instanceof vscode.TabInputText && tab.input.uri.toString() === key);
        try {
            await vscode.window.tabGroups.close(tabs, true);
        } catch (error) {
            this.log.warn(`could not close the preview: ${String(error)}`);
        }
        this.contents.delete(key);
    }

    dispose(): void {
        this.registration.dispose();
        this.changed.dispose();
        this.contents.clear();
        this.live.clear();
    }
}

/** The live view's text: the heading, the answer so far, and a note while it is being written or if it
 * ended early (`outcome` undefined: still running). */
function liveMarkdown(title: string, text: string, outcome: string | undefined): string {
    const note = outcome === undefined ? '\n*… writing*\n' : outcome === 'done' ? '' : `\n*(${outcome})*\n`;
    return `# ${title}\n\n${text.trimEnd()}\n${note}`;
}
