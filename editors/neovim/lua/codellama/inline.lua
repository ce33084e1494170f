-- Inline completion ("ghost text").
--
-- On Neovim 0.12+ the native vim.lsp.inline_completion does the work. Before that this module asks
-- for textDocument/inlineCompletion itself while you type (debounced, cancelling the previous
-- request) and draws the suggestion with an extmark: the first line as inline virtual text at the
-- cursor, the other lines as virtual lines below it.
local lsp = require("codellama.lsp")

local M = {}

local api = vim.api
local uv = vim.uv or vim.loop

M.ns = api.nvim_create_namespace("codellama.inline")

local METHOD = "textDocument/inlineCompletion"
local TRIGGER_INVOKED, TRIGGER_AUTOMATIC = 1, 2
local REQUEST_CANCELLED = -32800

local options = nil ---@type table?
local group = nil ---@type integer?
local enabled = true
local mapped = {} ---@type {mode: string, lhs: string}[]

---@class codellama.Suggestion
---@field text string what is left to insert at the anchor
---@field end_col integer? byte column on the anchor row up to which the item replaces text
---@field snippet boolean
---@field command table?
---@field client_id integer

---@class codellama.BufState
---@field client_id integer
---@field timer uv_timer_t?
---@field request_id integer?
---@field items codellama.Suggestion[]
---@field index integer
---@field extmark integer?
---@field anchor {row: integer, col: integer, tick: integer}?
---@field dismissed {row: integer, col: integer, tick: integer}?

local buffers = {} ---@type table<integer, codellama.BufState>

local function native_available()
  return vim.fn.has("nvim-0.12") == 1 and vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
end

--- Whether Neovim's own inline completion is used instead of this module's.
---@return boolean
function M.native()
  local choice = options and options.inline.native
  if choice == false then
    return false
  end
  if choice == true and not native_available() then
    vim.notify_once("codellama: inline.native = true needs Neovim 0.12+; using the plugin's ghost text", vim.log.levels.WARN)
    return false
  end
  return native_available()
end

local function where(bufnr)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= bufnr then
    return nil
  end
  local cursor = api.nvim_win_get_cursor(win)
  return { row = cursor[1] - 1, col = cursor[2], tick = api.nvim_buf_get_changedtick(bufnr) }, win
end

local function same(a, b)
  return a ~= nil and b ~= nil and a.row == b.row and a.col == b.col and a.tick == b.tick
end

local function in_insert_mode()
  local mode = api.nvim_get_mode().mode
  return mode:sub(1, 1) == "i" or mode:sub(1, 1) == "R"
end

local function stop_timer(state)
  if state.timer then
    state.timer:stop()
  end
end

local function cancel(state)
  if state.request_id then
    local client = vim.lsp.get_client_by_id(state.client_id)
    if client and not lsp.is_stopped(client) then
      pcall(lsp.cancel, client, state.request_id)
    end
    state.request_id = nil
  end
end

local function hide(bufnr, state)
  if state.extmark then
    pcall(api.nvim_buf_del_extmark, bufnr, M.ns, state.extmark)
    state.extmark = nil
  end
end

--- Remove the ghost text and forget the suggestions (the pending request is cancelled too).
---@param bufnr integer?
function M.clear(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local state = buffers[bufnr]
  if not state then
    return
  end
  stop_timer(state)
  cancel(state)
  hide(bufnr, state)
  state.items, state.index, state.anchor = {}, 0, nil
end

--- The suggestion shown in a buffer, if any.
---@param bufnr integer?
---@return codellama.Suggestion?
function M.current(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local state = buffers[bufnr]
  if not state or not state.extmark or state.index == 0 then
    return nil
  end
  return state.items[state.index]
end

---@param bufnr integer?
---@return boolean
function M.visible(bufnr)
  return M.current(bufnr) ~= nil
end

local function render(bufnr, state)
  hide(bufnr, state)
  local item = state.items[state.index]
  local anchor = state.anchor
  if not item or not anchor then
    return
  end
  local hl = options and options.inline.hl_group or "Comment"
  local lines = vim.split(item.text, "\n", { plain = true })
  if #state.items > 1 then
    lines[#lines] = lines[#lines] .. (" (%d/%d)"):format(state.index, #state.items)
  end
  local mark = { hl_mode = "combine", right_gravity = false }
  if lines[1] ~= "" then
    mark.virt_text = { { lines[1], hl } }
    mark.virt_text_pos = "inline"
  end
  if #lines > 1 then
    mark.virt_lines = {}
    for i = 2, #lines do
      -- An empty chunk list would be a zero-height line; a space keeps blank lines visible.
      table.insert(mark.virt_lines, { { lines[i] ~= "" and lines[i] or " ", hl } })
    end
  end
  local ok, id = pcall(api.nvim_buf_set_extmark, bufnr, M.ns, anchor.row, anchor.col, mark)
  state.extmark = ok and id or nil
end

--- Turn the server's items into suggestions relative to the cursor (text the user already typed
--- inside an item's range is skipped; items that do not continue what is there are dropped).
local function suggestions(bufnr, client, result, at)
  local raw_items = type(result) == "table" and (result.items or result) or {}
  local line = api.nvim_buf_get_lines(bufnr, at.row, at.row + 1, false)[1] or ""
  local out = {}
  for _, raw in ipairs(raw_items) do
    local text, snippet = raw.insertText, false
    if type(text) == "table" then
      text, snippet = text.value, true
    end
    if type(text) == "string" then
      local end_col
      local keep = true
      local range = raw.range
      if type(range) == "table" then
        if range.start.line ~= at.row then
          keep = false
        else
          local encoding = client.offset_encoding or "utf-16"
          local start_col = lsp.byte_col(line, range.start.character, encoding)
          if range["end"].line == at.row then
            end_col = lsp.byte_col(line, range["end"].character, encoding)
          end
          if start_col < at.col then
            local typed = line:sub(start_col + 1, at.col)
            if text:sub(1, #typed) == typed then
              text = text:sub(#typed + 1)
            else
              keep = false
            end
          elseif start_col > at.col then
            keep = false
          end
        end
      end
      if keep and text ~= "" then
        table.insert(out, {
          text = text,
          end_col = end_col and end_col > at.col and end_col or nil,
          snippet = snippet,
          command = raw.command,
          client_id = client.id,
        })
      end
    end
  end
  return out
end

--- Ask the server for suggestions at the cursor now.
---@param bufnr integer?
---@param trigger integer? 1 invoked (by the user), 2 automatic (while typing)
function M.request(bufnr, trigger)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local state = buffers[bufnr]
  if not state or not enabled or not in_insert_mode() then
    return
  end
  local client = vim.lsp.get_client_by_id(state.client_id)
  if not client or lsp.is_stopped(client) then
    return
  end
  local at = where(bufnr)
  if not at then
    return
  end
  cancel(state)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = lsp.position(client, bufnr, at.row, at.col),
    context = { triggerKind = trigger or TRIGGER_AUTOMATIC },
  }
  local request_id
  local ok, id = lsp.request(client, METHOD, params, function(err, result)
    if state.request_id ~= request_id then
      return -- cancelled or superseded
    end
    state.request_id = nil
    if err then
      if err.code ~= REQUEST_CANCELLED then
        vim.schedule(function()
          api.nvim_exec_autocmds("User", { pattern = "CodellamaInlineError", modeline = false, data = err })
        end)
      end
      return
    end
    local now = where(bufnr)
    if not same(now, at) or not in_insert_mode() or not enabled then
      return -- the user moved on while the model was thinking
    end
    local items = suggestions(bufnr, client, result, at)
    if #items == 0 then
      return
    end
    state.items, state.index, state.anchor = items, 1, at
    render(bufnr, state)
    api.nvim_exec_autocmds("User", { pattern = "CodellamaSuggestion", modeline = false, data = { bufnr = bufnr } })
  end, bufnr)
  if ok and id then
    request_id = id
    state.request_id = id
  end
end

-- Text typed since the suggestion appeared that matches its beginning keeps it (shortened); anything
-- else drops it and, after the debounce, asks again.
local function on_change(bufnr)
  local state = buffers[bufnr]
  if not state or not enabled then
    return
  end
  local at = where(bufnr)
  if not at then
    return
  end
  if state.extmark and state.anchor then
    if same(at, state.anchor) then
      return
    end
    local anchor, item = state.anchor, state.items[state.index]
    if item and at.row == anchor.row and at.col > anchor.col and at.tick ~= anchor.tick then
      local line = api.nvim_buf_get_lines(bufnr, at.row, at.row + 1, false)[1] or ""
      local typed = line:sub(anchor.col + 1, at.col)
      local first = item.text:match("^[^\n]*")
      if #typed < #first and first:sub(1, #typed) == typed then
        for _, other in ipairs(state.items) do
          other.text = other.text:sub(1, #typed) == typed and other.text:sub(#typed + 1) or other.text
          other.end_col = other.end_col and other.end_col + #typed or nil
        end
        state.anchor = at
        render(bufnr, state)
        return
      end
    end
  end
  if same(at, state.dismissed) then
    return
  end
  hide(bufnr, state)
  state.items, state.index, state.anchor = {}, 0, nil
  cancel(state)
  if not in_insert_mode() then
    return
  end
  state.timer = state.timer or uv.new_timer()
  state.timer:stop()
  local delay = options and options.inline.debounce_ms or 75
  state.timer:start(delay, 0, vim.schedule_wrap(function()
    if buffers[bufnr] == state and api.nvim_buf_is_valid(bufnr) and api.nvim_get_current_buf() == bufnr then
      M.request(bufnr, TRIGGER_AUTOMATIC)
    end
  end))
end

--- Insert the shown suggestion at the cursor.
---@param opts {line: boolean?}? line: only up to the end of its first line
---@return boolean accepted
function M.accept(opts)
  opts = opts or {}
  if M.native() then
    if opts.line then
      return false
    end
    return vim.lsp.inline_completion.get() and true or false
  end
  local bufnr = api.nvim_get_current_buf()
  local state = buffers[bufnr]
  local item = M.current(bufnr)
  if not state or not item then
    return false
  end
  local at, win = where(bufnr)
  if not at or not same(at, state.anchor) then
    M.clear(bufnr)
    return false
  end
  local text, rest = item.text, nil
  if opts.line then
    local first, after = item.text:match("^([^\n]*)\n(.*)$")
    if first and first ~= "" then
      text, rest = first, "\n" .. after
    elseif first then
      local second, remaining = after:match("^([^\n]*)(.*)$")
      text, rest = "\n" .. second, remaining ~= "" and remaining or nil
    end
  end
  local lines = vim.split(text, "\n", { plain = true })
  local end_col = (rest == nil and item.end_col) or at.col
  hide(bufnr, state)
  cancel(state)
  stop_timer(state)
  if item.snippet and rest == nil and vim.snippet then
    state.items, state.index, state.anchor = {}, 0, nil
    if end_col > at.col then
      api.nvim_buf_set_text(bufnr, at.row, at.col, at.row, end_col, { "" })
    end
    vim.snippet.expand(text)
  else
    api.nvim_buf_set_text(bufnr, at.row, at.col, at.row, end_col, lines)
    local row = at.row + #lines - 1
    local col = (#lines == 1 and at.col or 0) + #lines[#lines]
    api.nvim_win_set_cursor(win, { row + 1, col })
    if rest then
      -- Keep showing what is left; the edit above does not count as the user typing over it.
      state.items = { vim.tbl_extend("force", item, { text = rest }) }
      state.index = 1
      state.anchor = { row = row, col = col, tick = api.nvim_buf_get_changedtick(bufnr) }
      render(bufnr, state)
    else
      state.items, state.index, state.anchor = {}, 0, nil
    end
  end
  if rest == nil and item.command then
    local client = vim.lsp.get_client_by_id(item.client_id)
    if client then
      if client.exec_cmd then
        client:exec_cmd(item.command, { bufnr = bufnr })
      else
        lsp.execute(client, bufnr, item.command.command, item.command.arguments, function() end)
      end
    end
  end
  api.nvim_exec_autocmds("User", { pattern = "CodellamaAccepted", modeline = false, data = { bufnr = bufnr, text = text } })
  return true
end

--- Hide the suggestion until the text changes.
---@return boolean dismissed whether there was one to hide
function M.dismiss()
  if M.native() then
    return false
  end
  local bufnr = api.nvim_get_current_buf()
  local shown = M.visible(bufnr)
  local state = buffers[bufnr]
  if state then
    M.clear(bufnr)
    state.dismissed = where(bufnr)
  end
  return shown
end

--- Show the next (count 1) or previous (count -1) suggestion; with none shown, ask for them now.
---@param count integer
---@return boolean
function M.cycle(count)
  if M.native() then
    local native = vim.lsp.inline_completion
    if native.select then
      native.select({ count = count })
    elseif native.jump then
      native.jump({ count = count })
    end
    return true
  end
  local bufnr = api.nvim_get_current_buf()
  local state = buffers[bufnr]
  if not state then
    return false
  end
  if not M.visible(bufnr) then
    state.dismissed = nil
    M.request(bufnr, TRIGGER_INVOKED)
    return true
  end
  state.index = (state.index - 1 + count) % #state.items + 1
  render(bufnr, state)
  return true
end

--- Start inline completion for a buffer the server attached to.
---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  if not options or not options.inline.enable or not group then
    return
  end
  if vim.tbl_contains(options.inline.disabled_filetypes or {}, vim.bo[bufnr].filetype) then
    return
  end
  if not (client.server_capabilities or {}).inlineCompletionProvider then
    return
  end
  if M.native() then
    vim.lsp.inline_completion.enable(enabled, { bufnr = bufnr })
    return
  end
  local state = buffers[bufnr]
  if state then
    M.clear(bufnr)
  else
    state = { items = {}, index = 0 }
    buffers[bufnr] = state
  end
  state.client_id = client.id
  api.nvim_clear_autocmds({ group = group, buffer = bufnr })
  api.nvim_create_autocmd({ "InsertEnter", "TextChangedI", "TextChangedP", "CursorMovedI" }, {
    group = group,
    buffer = bufnr,
    desc = "codellama: ask for inline completion",
    callback = function(args)
      on_change(args.buf)
    end,
  })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    desc = "codellama: hide inline completion",
    callback = function(args)
      M.clear(args.buf)
      if buffers[args.buf] then
        buffers[args.buf].dismissed = nil
      end
    end,
  })
  api.nvim_create_autocmd({ "BufUnload" }, {
    group = group,
    buffer = bufnr,
    desc = "codellama: forget inline completion state",
    callback = function(args)
      M.detach(args.buf)
    end,
  })
end

---@param bufnr integer
function M.detach(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  M.clear(bufnr)
  if state.timer then
    state.timer:close()
    state.timer = nil
  end
  buffers[bufnr] = nil
  if group then
    pcall(api.nvim_clear_autocmds, { group = group, buffer = bufnr })
  end
end

---@param value boolean
function M.set_enabled(value)
  enabled = value and true or false
  if M.native() then
    vim.lsp.inline_completion.enable(enabled)
    return
  end
  if not enabled then
    for bufnr in pairs(buffers) do
      M.clear(bufnr)
    end
  end
end

function M.is_enabled()
  return enabled
end

local function feed(key)
  api.nvim_feedkeys(vim.keycode and vim.keycode(key) or api.nvim_replace_termcodes(key, true, false, true), "in", false)
end

--- A mapping that acts when a suggestion is shown and otherwise does what the key normally does.
local function map(lhs, action, desc)
  if not lhs or lhs == "" then
    return
  end
  vim.keymap.set("i", lhs, function()
    if not action() then
      feed(lhs)
    end
  end, { desc = "codellama: " .. desc, silent = true })
  table.insert(mapped, { mode = "i", lhs = lhs })
end

--- (Re)create the augroup and the insert-mode mappings; removes the mappings a previous setup made.
---@param opts table
function M.setup(opts)
  options = opts
  for bufnr in pairs(buffers) do
    M.detach(bufnr)
  end
  group = api.nvim_create_augroup("codellama.inline", { clear = true })
  for _, m in ipairs(mapped) do
    pcall(vim.keymap.del, m.mode, m.lhs)
  end
  mapped = {}
  if not opts.inline.enable then
    return
  end
  local keys = opts.inline.keymaps or {}
  map(keys.accept, function()
    return M.accept()
  end, "accept the suggestion")
  map(keys.accept_line, function()
    return M.accept({ line = true })
  end, "accept a line of the suggestion")
  map(keys.next, function()
    return M.cycle(1)
  end, "next suggestion")
  map(keys.prev, function()
    return M.cycle(-1)
  end, "previous suggestion")
  map(keys.dismiss, function()
    return M.dismiss()
  end, "dismiss the suggestion")
end

--- Mappings made by the last setup (for :checkhealth and tests).
function M.mappings()
  return vim.deepcopy(mapped)
end

return M
