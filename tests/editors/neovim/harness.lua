-- Drives the codellama plugin in a real (headless) Neovim against the real server and the TGI test
-- server, then writes what it saw as JSON for tests/editors/test_neovim.py to judge.
--
-- Run by the test as: nvim --headless --clean -c "luafile harness.lua", with
--   CODELLAMA_TEST_PLUGIN    editors/neovim
--   CODELLAMA_TEST_SCENARIO  inline | actions | health | checkhealth | streaming | unicode
--   CODELLAMA_TEST_OUT       the JSON file to write
--   CODELLAMA_TEST_FILE      the Python file to edit
--   CODELLAMA_TEST_PYTHON    the interpreter that runs `-m lsp serve`
--   CODELLAMA_TEST_ENDPOINT  the TGI test server's URL
--   CODELLAMA_TEST_TIMEOUT_MS  hard limit: past it the results so far are written and Neovim quits
--
-- Each scenario runs in a coroutine: `sleep` and `wait_for` yield to Neovim's event loop, so typed keys,
-- autocommands, timers and LSP messages are processed exactly as for a person using the editor.

local env = vim.env
local api = vim.api

local results = {
  scenario = env.CODELLAMA_TEST_SCENARIO,
  nvim = tostring(vim.version()),
  checks = {},
  messages = {},
  data = {},
}
local finished = false
local started = vim.uv.now()

local function finish()
  if finished then
    return
  end
  finished = true
  results.elapsed_ms = vim.uv.now() - started
  local ok, encoded = pcall(vim.json.encode, results)
  if not ok then
    encoded = vim.json.encode({ error = "could not encode the results: " .. tostring(encoded), checks = {} })
  end
  vim.fn.writefile({ encoded }, env.CODELLAMA_TEST_OUT)
  vim.cmd("qa!")
end

vim.defer_fn(function()
  results.error = "hard timeout: the scenario did not finish"
  finish()
end, tonumber(env.CODELLAMA_TEST_TIMEOUT_MS or "40000"))

-- Every message the plugin (or the LSP client) shows the user.
local notify = vim.notify
vim.notify = function(message, level, opts)
  table.insert(results.messages, { message = tostring(message), level = level or vim.log.levels.INFO })
  return notify(message, level, opts)
end

local function check(name, ok, detail)
  table.insert(results.checks, { name = name, ok = ok and true or false, detail = detail ~= nil and vim.inspect(detail) or nil })
  return ok
end

local main ---@type thread

local function resume(...)
  local ok, err = coroutine.resume(main, ...)
  if not ok then
    results.error = debug.traceback(main, tostring(err))
    finish()
  end
end

local function sleep(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end

--- Poll until pred() is truthy; returns its value, or nil after timeout_ms (and records a failed check).
local function wait_for(what, pred, timeout_ms)
  local deadline = vim.uv.now() + (timeout_ms or 10000)
  while vim.uv.now() < deadline do
    local ok, value = pcall(pred)
    if ok and value then
      return value
    end
    sleep(20)
  end
  check("in time: " .. what, false)
  return nil
end

local function type_keys(keys)
  api.nvim_feedkeys(api.nvim_replace_termcodes(keys, true, false, true), "mt", false)
end

local function lines(bufnr)
  return api.nvim_buf_get_lines(bufnr or 0, 0, -1, false)
end

-- -- the plugin -------------------------------------------------------------------------------------

vim.opt.runtimepath:prepend(env.CODELLAMA_TEST_PLUGIN)
vim.o.swapfile = false

local function options(extra)
  return vim.tbl_deep_extend("force", {
    cmd = { env.CODELLAMA_TEST_PYTHON, "-m", "lsp", "serve" },
    settings = {
      endpoint = env.CODELLAMA_TEST_ENDPOINT,
      requestTimeout = 20,
      completion = { debounceMs = 0 },
    },
    inline = { debounce_ms = 30 },
  }, extra or {})
end

local function open_and_attach()
  vim.cmd.edit(vim.fn.fnameescape(env.CODELLAMA_TEST_FILE))
  local bufnr = api.nvim_get_current_buf()
  local client = wait_for("the server attaches", function()
    local c = vim.lsp.get_clients({ bufnr = bufnr, name = "codellama" })[1]
    return c and c.initialized and c.server_capabilities and c
  end, 30000)
  check("the server attached", client ~= nil)
  results.attach_ms = vim.uv.now() - started
  return bufnr, client
end

--- The text of the answer float, once final (nil while a streamed answer is still being written).
local function float_text()
  local float = require("codellama.float").current
  if not float or float.live or not api.nvim_win_is_valid(float.win) then
    return nil
  end
  return table.concat(api.nvim_buf_get_lines(float.buf, 0, -1, false), "\n"), float
end

local function wait_for_float(what)
  local text = wait_for(what, function()
    return float_text()
  end, 15000)
  local _, float = float_text()
  local info = nil
  if float then
    info = {
      text = text,
      filetype = vim.bo[float.buf].filetype,
      relative = api.nvim_win_get_config(float.win).relative,
      title = float.title,
    }
    require("codellama.commands").close_float()
  end
  return info
end

-- -- scenarios --------------------------------------------------------------------------------------

local scenarios = {}

-- Ghost text while typing: shown as an extmark, dismissed, asked for again, typed through, accepted.
function scenarios.inline()
  require("codellama").setup(options())
  local bufnr = open_and_attach()
  local inline = require("codellama.inline")

  -- Line 9 is the indented empty body of `clamp`: start typing at its end.
  api.nvim_win_set_cursor(0, { 9, 0 })
  type_keys("A")
  local shown = wait_for("ghost text appears", function()
    return inline.visible(bufnr)
  end, 15000)
  check("ghost text is shown", shown)
  local marks = api.nvim_buf_get_extmarks(bufnr, inline.ns, 0, -1, { details = true })
  results.data.extmarks = marks
  check("one extmark", #marks == 1, marks)
  if marks[1] then
    local row, col, details = marks[1][2], marks[1][3], marks[1][4]
    results.data.mark = { row = row, col = col, virt_text = details.virt_text, virt_lines = details.virt_lines }
  end
  results.data.mode_while_shown = api.nvim_get_mode().mode
  results.data.status_while_shown = require("codellama").status()

  type_keys("<C-]>")
  wait_for("dismiss hides the ghost text", function()
    return not inline.visible(bufnr)
  end, 3000)
  results.data.after_dismiss = #api.nvim_buf_get_extmarks(bufnr, inline.ns, 0, -1, {})
  results.data.lines_after_dismiss = lines(bufnr)

  type_keys("<M-]>")
  check("the next key asks again", wait_for("ghost text after asking again", function()
    return inline.visible(bufnr)
  end, 15000))

  -- Typing what the suggestion starts with keeps it, shortened.
  type_keys("if")
  wait_for("typed text", function()
    return lines(bufnr)[9] == "    if"
  end, 3000)
  sleep(50)
  results.data.visible_after_typing = inline.visible(bufnr)
  local after_typing = api.nvim_buf_get_extmarks(bufnr, inline.ns, 0, -1, { details = true })
  results.data.virt_text_after_typing = after_typing[1] and after_typing[1][4].virt_text or nil

  -- <M-l> takes its first line only; the rest stays on show.
  type_keys("<M-l>")
  wait_for("accepting a line", function()
    return lines(bufnr)[9] ~= "    if"
  end, 3000)
  results.data.after_accept_line = {
    lines = lines(bufnr),
    cursor = api.nvim_win_get_cursor(0),
    visible = inline.visible(bufnr),
    marks = vim.tbl_map(function(m)
      return { m[2], m[3], m[4].virt_text or false, m[4].virt_lines or false }
    end, api.nvim_buf_get_extmarks(bufnr, inline.ns, 0, -1, { details = true })),
  }

  type_keys("<Tab>")
  wait_for("accepting inserts the text", function()
    return #lines(bufnr) >= 11 and lines(bufnr)[11] ~= ""
  end, 5000)
  results.data.lines_after_accept = lines(bufnr)
  results.data.cursor_after_accept = api.nvim_win_get_cursor(0)
  results.data.mode_after_accept = api.nvim_get_mode().mode
  type_keys("<Esc>")
  sleep(100)
  results.data.extmarks_after_leave = #api.nvim_buf_get_extmarks(bufnr, inline.ns, 0, -1, {})
  results.data.status = require("codellama").status()

  -- With no suggestion shown, <Tab> types a tab as usual.
  api.nvim_win_set_cursor(0, { 1, 0 })
  require("codellama").toggle(false)
  wait_for("toggled off", function()
    return not inline.is_enabled()
  end, 5000)
  type_keys("I<Tab><Esc>")
  wait_for("tab typed", function()
    return lines(bufnr)[1] ~= "def mean(values):"
  end, 3000)
  results.data.first_line_after_tab = lines(bufnr)[1]
  results.data.status_off = require("codellama").status()
end

-- Explain and Refactor through the code actions, then every user command.
function scenarios.actions()
  require("codellama").setup(options())
  local bufnr = open_and_attach()
  local original = lines(bufnr)

  local function pick(title)
    return function(action)
      return action.title == title
    end
  end

  -- Explain `spread` (code action: the server resolves it to codellama.showExplanation).
  api.nvim_win_set_cursor(0, { 9, 4 })
  vim.lsp.buf.code_action({ filter = pick("CodeLlama: Explain"), apply = true })
  results.data.explain_action = wait_for_float("the Explain code action shows a float")

  -- Refactor `mean` (code action: a versioned workspace edit).
  api.nvim_win_set_cursor(0, { 3, 8 })
  vim.lsp.buf.code_action({ filter = pick("CodeLlama: Refactor"), apply = true })
  wait_for("the Refactor code action edits the buffer", function()
    return lines(bufnr)[2] ~= original[2]
  end, 15000)
  results.data.after_refactor_action = lines(bufnr)

  -- :CodellamaExplain on a line range.
  local done = 0
  api.nvim_create_autocmd("User", {
    pattern = "CodellamaResult",
    callback = function()
      done = done + 1
    end,
  })
  local function run(command)
    local before = done
    vim.cmd(command)
    wait_for(command .. " answers", function()
      return done > before
    end, 15000)
  end

  vim.cmd("5,6CodellamaExplain")
  results.data.explain_command = wait_for_float(":CodellamaExplain shows a float")

  -- :CodellamaRefactor with an instruction, at the cursor (the server takes the enclosing function).
  local before = lines(bufnr)
  api.nvim_win_set_cursor(0, { 6, 4 })
  run("CodellamaRefactor use one expression")
  wait_for("CodellamaRefactor edits the buffer", function()
    return not vim.deep_equal(lines(bufnr), before)
  end, 5000)
  results.data.after_refactor_command = lines(bufnr)

  -- :CodellamaAsk over a visual selection.
  api.nvim_win_set_cursor(0, { 1, 0 })
  type_keys("Vj<Esc>")
  wait_for("visual selection made", function()
    return vim.fn.getpos("'>")[2] == 2
  end, 3000)
  vim.cmd("'<,'>CodellamaAsk is this safe for an empty list?")
  results.data.ask_command = wait_for_float(":CodellamaAsk shows a float")

  -- :CodellamaDocstring at the cursor.
  before = lines(bufnr)
  api.nvim_win_set_cursor(0, { 2, 4 })
  run("CodellamaDocstring")
  wait_for("CodellamaDocstring edits the buffer", function()
    return not vim.deep_equal(lines(bufnr), before)
  end, 5000)
  results.data.after_docstring = lines(bufnr)

  -- A Refactor whose code would not parse is not applied silently: it is shown, and applied only when
  -- the user says so.
  local asked = nil
  vim.ui.select = function(items, opts, on_choice)
    asked = { items = items, prompt = opts.prompt, float = float_text() }
    on_choice(items[1], 1)
  end
  before = lines(bufnr)
  api.nvim_win_set_cursor(0, { 7, 4 })
  vim.lsp.buf.code_action({ filter = pick("CodeLlama: Refactor"), apply = true })
  wait_for("the proposal is applied on request", function()
    return not vim.deep_equal(lines(bufnr), before)
  end, 15000)
  results.data.review = asked
  results.data.after_review = lines(bufnr)
  api.nvim_buf_set_lines(bufnr, 0, -1, false, before)

  -- :CodellamaToggle: the server's answer decides.
  vim.cmd("CodellamaToggle")
  results.data.toggled_off = wait_for("toggle off", function()
    return not require("codellama.inline").is_enabled()
  end, 5000)
  results.data.status_off = require("codellama").status()
  vim.cmd("CodellamaToggle on")
  results.data.toggled_on = wait_for("toggle on", function()
    return require("codellama.inline").is_enabled()
  end, 5000)
  results.data.status = require("codellama").status()
  results.data.buffer_modified = vim.bo[bufnr].modified
end

-- setup() twice is the same as once; :checkhealth codellama reports the server and the backend.
function scenarios.health()
  local codellama = require("codellama")
  codellama.setup(options({ keymaps = { explain = "<leader>ce" } }))
  codellama.setup(options({ keymaps = { explain = "<leader>ce" } }))
  local bufnr = open_and_attach()
  sleep(200)

  local function count()
    return {
      plugin_autocmds = #api.nvim_get_autocmds({ group = "codellama" }),
      inline_autocmds = #api.nvim_get_autocmds({ group = "codellama.inline", buffer = bufnr }),
      clients = #vim.lsp.get_clients({ name = "codellama" }),
      lsp_attach = #api.nvim_get_autocmds({ event = "LspAttach" }),
      tab_maps = #vim.tbl_filter(function(m)
        return m.lhs == "<Tab>"
      end, api.nvim_get_keymap("i")),
      explain_map = vim.fn.maparg("<leader>ce", "n"),
      commands = vim.tbl_count(vim.tbl_filter(function(name)
        return name:match("^Codellama") ~= nil
      end, vim.tbl_keys(api.nvim_get_commands({})))),
    }
  end
  results.data.after_two_setups = count()
  -- A third setup with other options: still one client, nothing doubled, the settings sent along.
  codellama.setup(options({ keymaps = { explain = "<leader>ce" }, settings = { temperature = 0.5 } }))
  sleep(300)
  results.data.after_three_setups = count()
  local client = vim.lsp.get_clients({ name = "codellama" })[1]
  results.data.client_settings = client and client.settings or nil
  results.data.still_attached = vim.lsp.get_clients({ bufnr = bufnr, name = "codellama" })[1] ~= nil

  vim.cmd("checkhealth codellama")
  local health = wait_for("the health report", function()
    local text = table.concat(lines(0), "\n")
    return text:find("codellama: inline completion", 1, true) and text
  end, 40000)
  results.data.health = health
end

-- Only :checkhealth, with whatever endpoint the test gives (for the failure report).
function scenarios.checkhealth()
  require("codellama").setup(options({ settings = { apiToken = "hf_not_a_real_token", maxRetries = 0 } }))
  open_and_attach()
  vim.cmd("checkhealth codellama")
  results.data.health = wait_for("the health report", function()
    local text = table.concat(lines(0), "\n")
    return text:find("codellama: inline completion", 1, true) and text
  end, 40000)
end

-- Answers that stream: the explanation grows in its float while the model writes; the first words'
-- time is measured from the command to the first partial drawn. A refactoring shows a live preview, then
-- the edit lands as before.
function scenarios.streaming()
  require("codellama").setup(options())
  local bufnr = open_and_attach()
  local floats = require("codellama.float")
  local first, partials, lengths, live_wins = nil, 0, {}, {}
  local t0 = 0
  api.nvim_create_autocmd("User", {
    pattern = "CodellamaPartial",
    callback = function(args)
      vim.cmd.redraw()
      partials = partials + 1
      first = first or (vim.uv.hrtime() - t0) / 1e6
      table.insert(lengths, args.data.length)
      local float = floats.current
      live_wins[float and float.win or -1] = float and float.title or false
    end,
  })
  local result_ms = nil
  api.nvim_create_autocmd("User", {
    pattern = "CodellamaResult",
    callback = function()
      result_ms = result_ms or (vim.uv.hrtime() - t0) / 1e6
    end,
  })

  api.nvim_win_set_cursor(0, { 3, 4 })
  t0 = vim.uv.hrtime()
  vim.cmd("CodellamaExplain")
  local live = wait_for("the first words are shown", function()
    local float = floats.current
    return float and float.live and api.nvim_win_is_valid(float.win) and {
      win = float.win,
      title = float.title,
      text = table.concat(api.nvim_buf_get_lines(float.buf, 0, -1, false), "\n"),
    }
  end, 15000)
  results.data.live = live
  results.data.first_words_ms = first
  local final = wait_for_float("the whole explanation")
  results.data.final = final
  results.data.result_ms = result_ms
  results.data.partials = partials
  results.data.lengths = lengths
  results.data.same_window = live ~= nil and vim.tbl_count(live_wins) == 1 and live_wins[live.win] ~= nil

  -- Refactor: a preview float that grows, closed when the edit is offered; the edit lands.
  local before = lines(bufnr)
  partials, live_wins, lengths = 0, {}, {}
  t0 = vim.uv.hrtime()
  vim.cmd("CodellamaRefactor use sum()")
  wait_for("the refactoring edits the buffer", function()
    return not vim.deep_equal(lines(bufnr), before)
  end, 15000)
  sleep(50)
  results.data.preview_titles = vim.tbl_values(live_wins)
  results.data.preview_partials = partials
  results.data.float_after_refactor = floats.current ~= nil
  results.data.after_refactor = lines(bufnr)
end

-- Neovim's default client capabilities (utf-8 positions) and edits of lines with non-ASCII text: the
-- server's copy of the document must be exactly the buffer (checked in the prompt the model receives).
function scenarios.unicode()
  require("codellama").setup(options())
  local bufnr = open_and_attach()
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = "codellama" })[1]
  results.data.offset_encoding = client and client.offset_encoding or nil
  results.data.offered = client and client.capabilities.general and client.capabilities.general.positionEncodings

  local function at(row, needle)
    local start = lines(bufnr)[row]:find(needle, 1, true)
    assert(start, ("%q not on line %d"):format(needle, row))
    api.nvim_win_set_cursor(0, { row, start - 1 })
  end
  local function edit(keys, what)
    local before = lines(bufnr)
    type_keys(keys)
    wait_for(what, function()
      return not vim.deep_equal(lines(bufnr), before) and api.nvim_get_mode().mode == "n"
    end, 3000)
  end
  -- Insert X after "é"; type after the CJK name; delete the emoji (4 bytes, 2 UTF-16 units); append
  -- to the end of a line that has CJK text before the cursor; replace "ñ".
  at(2, "llo")
  edit("iX<Esc>", "insert after é")
  at(1, "(")
  edit("iさん<Esc>", "insert after the CJK name")
  at(3, "😀")
  edit("x", "delete the emoji")
  edit("A # café ☕ ok<Esc>", "append after non-ASCII text")
  at(4, "ñ")
  edit("r~", "replace ñ")
  results.data.buffer = lines(bufnr)

  -- Ask about the whole buffer: the prompt carries the server's copy of it.
  local done = false
  api.nvim_create_autocmd("User", {
    pattern = "CodellamaResult",
    once = true,
    callback = function(args)
      done = true
      results.data.answer_error = args.data.error
    end,
  })
  vim.cmd("%CodellamaExplain")
  wait_for("the explanation", function()
    return done
  end, 15000)
  results.data.float = wait_for_float("the explanation float")
end

main = coroutine.create(function()
  local scenario = scenarios[env.CODELLAMA_TEST_SCENARIO or ""]
  if not scenario then
    results.error = "unknown scenario " .. tostring(env.CODELLAMA_TEST_SCENARIO)
  else
    local ok, err = xpcall(scenario, debug.traceback)
    if not ok then
      results.error = err
    end
  end
  finish()
end)

vim.schedule(resume)
