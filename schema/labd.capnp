# labd wire contract: one Cap'n Proto interface per capability (capabilities/protocols.py).
#
# Holding a capability is the permission: a connection starts with nothing but the
# Bootstrap, which hands out the Lab only for the daemon's token file, and a restricted
# Instrument only for a sharing token. Everything else is reached through those.
#
# Errors: a refused or failed call raises a Cap'n Proto exception whose description
# contains "labd:<code>: <message>" (codes: labd/errors.py, e.g. busy, unavailable,
# out-of-range, permission-denied); the client turns it back into the exception class.
#
# Evolution: extend (new fields and methods at the end, new ordinals), never renumber or
# rename. Method names mirror the Protocol methods (snake_case there, camelCase here).

@0x8b170b3ed0959475;

# ---------------------------------------------------------------- values

struct Reading {
  value @0 :Float64;
  unit @1 :Text;
  timestamp @2 :Float64;   # seconds since the epoch
}

struct Limits {
  low @0 :Float64;
  high @1 :Float64;
  unit @2 :Text;
}

struct Roi {
  x @0 :Int32;
  y @1 :Int32;
  width @2 :Int32;
  height @3 :Int32;
}

struct FrameFormat {
  height @0 :Int32;
  width @1 :Int32;
  dtype @2 :Text;          # numpy dtype name, e.g. "uint16"
}

enum CoolerState {
  off @0;
  cooling @1;
  stable @2;
  fault @3;
}

struct SupplyReadback {
  voltage @0 :Reading;
  current @1 :Reading;
  inCompliance @2 :Bool;
}

enum InstrumentState {
  starting @0;
  ready @1;
  busy @2;
  faulted @3;
  restarting @4;
  stopped @5;
}

struct InstrumentInfo {
  name @0 :Text;
  driver @1 :Text;
  capabilities @2 :List(Text);   # capability names, see capabilities.CAPABILITIES
  state @3 :InstrumentState;
  reason @4 :Text;               # why faulted/stopped; once ready again: the last fault's
                                 # reason; empty if it never faulted
  restarts @5 :UInt32;
  streams @6 :List(Text);        # streams of this instrument, e.g. "stage/position"
  lastFault @7 :Text;            # the most recent fault's reason, kept after recovery; empty: none
  lastFaultAt @8 :Float64;       # when it happened, seconds since the epoch; 0: never faulted
}

struct StateChange {
  instrument @0 :Text;
  state @1 :InstrumentState;
  reason @2 :Text;
  timestamp @3 :Float64;
}

struct StreamInfo {
  name @0 :Text;
  kind @1 :Text;                 # "readings" | "frames" | "results"
  lastSeq @2 :UInt64;            # 0: nothing published yet
}

# ---------------------------------------------------------------- capabilities

interface Movable {
  moveAbs @0 (position :Float64);
  moveRel @1 (delta :Float64);
  position @2 () -> (reading :Reading);
  waitSettled @3 (timeout :Float64) -> (reading :Reading);   # timeout <= 0: no timeout
  limits @4 () -> (limits :Limits);
}

interface Stoppable {
  stop @0 ();
}

interface Readable {
  read @0 () -> (reading :Reading);
}

interface Triggerable {
  arm @0 ();
  trigger @1 ();
}

interface FrameProducer {
  snap @0 () -> (frame :Data);   # one Arrow IPC stream, labd.records.FRAME_SCHEMA, one row
  frameFormat @1 () -> (format :FrameFormat);
}

interface ExposureControl {
  exposure @0 () -> (seconds :Float64);
  setExposure @1 (seconds :Float64);
}

interface RoiSelectable {
  roi @0 () -> (roi :Roi);
  setRoi @1 (roi :Roi);
  sensorSize @2 () -> (width :Int32, height :Int32);
}

interface Cooled {
  coolingTarget @0 () -> (celsius :Float64);
  setCoolingTarget @1 (celsius :Float64);
  sensorTemperature @2 () -> (reading :Reading);
  coolerState @3 () -> (state :CoolerState);
}

interface TemperatureSensor {
  temperature @0 () -> (reading :Reading);
}

interface VoltageSource {
  setVoltage @0 (volts :Float64);
  voltageSetpoint @1 () -> (volts :Float64);
  setCurrentLimit @2 (amps :Float64);
  currentLimit @3 () -> (amps :Float64);
  readback @4 () -> (readback :SupplyReadback);
}

interface Switchable {
  setOn @0 (on :Bool);
  isOn @1 () -> (on :Bool);
}

interface FaultInjectable {
  injectFault @0 (kind :Text);   # "raise" | "hang" | "disconnect" | "clear"
}

# ---------------------------------------------------------------- parameters
#
# An instrument's settings by name (docs/parameters.md): a camera's gain, a meter's range.

enum ParameterKind {
  float @0;
  int @1;
  bool @2;
  text @3;
  choice @4;
}

struct ParameterValue {
  union {
    number @0 :Float64;          # float and int parameters
    flag @1 :Bool;               # bool
    text @2 :Text;               # text and choice; for a number also a quantity: "1064 nm"
  }
}

struct Parameter {
  name @0 :Text;
  kind @1 :ParameterKind;
  unit @2 :Text;                 # of a number, as pint writes it ("nm", "K/min"); empty: none
  low @3 :Float64;               # -inf: unbounded
  high @4 :Float64;              # +inf: unbounded
  choices @5 :List(Text);        # of a choice
  writable @6 :Bool;             # false: read-only (for this holder: see Restriction)
  readable @7 :Bool;             # false: write-only (the instrument cannot report it)
  description @8 :Text;
  channel @9 :Text;              # of a multi-channel instrument; empty: the instrument
}

struct ParameterChange {
  instrument @0 :Text;           # "tc" or "tc/A"
  parameter @1 :Text;
  value @2 :ParameterValue;
  unit @3 :Text;
  by @4 :Text;                   # who set it: "rpc", "script <name> run <id>"
  timestamp @5 :Float64;
}

interface ParameterWatcher {
  changed @0 (change :ParameterChange);
}

interface Configurable {
  parameters @0 () -> (parameters :List(Parameter));
  getParameter @1 (name :Text) -> (value :ParameterValue);
  setParameter @2 (name :Text, value :ParameterValue, unit :Text) -> (value :ParameterValue);
      # unit: of value.number ("nm"), converted to the parameter's; empty: its own unit.
      # Returns the value the instrument holds afterwards (read back where it can be).
      # Every set is recorded on the stream "<instrument>/parameters".
  watch @3 (watcher :ParameterWatcher) -> (subscription :Subscription);
      # every set made through the daemon from now on, one call in flight
}

interface WavelengthTunable {
  wavelength @0 () -> (nm :Float64);
  setWavelength @1 (nm :Float64);
}

interface TemperatureController {
  temperatureSetpoint @0 () -> (kelvin :Float64);
  setTemperatureSetpoint @1 (kelvin :Float64);
  rampRate @2 () -> (kelvinPerMin :Float64);     # 0: the set point jumps
  setRampRate @3 (kelvinPerMin :Float64);
  heaterOutput @4 () -> (reading :Reading);      # percent of the heater range
}

# Every capability of one instrument; a field the instrument lacks is left null.
struct Capabilities {
  movable @0 :Movable;
  stoppable @1 :Stoppable;
  readable @2 :Readable;
  triggerable @3 :Triggerable;
  frameProducer @4 :FrameProducer;
  exposureControl @5 :ExposureControl;
  roiSelectable @6 :RoiSelectable;
  cooled @7 :Cooled;
  temperatureSensor @8 :TemperatureSensor;
  voltageSource @9 :VoltageSource;
  switchable @10 :Switchable;
  faultInjectable @11 :FaultInjectable;
  configurable @12 :Configurable;
  wavelengthTunable @13 :WavelengthTunable;
  temperatureController @14 :TemperatureController;
}

# ---------------------------------------------------------------- live data

# Where a pushed batch lies in shared memory instead of in the message (see subscribe's
# `sharedMemory`): `length` bytes at `offset` of the file `path`, valid until push returns.
struct SharedSlot {
  path @0 :Text;
  offset @1 :UInt64;
  length @2 :UInt64;             # 0: not used; the batch is in the message
}

# The bulk side channel (see subscribe's `bulk`): an offer (`port` and `token`, length 0,
# the batch still in the message): connect to the daemon's host at `port` within 1 s
# (TLS if the connection is TLS) and send the 32 token bytes. Later pushes with `length`
# set: the batch follows on that connection as seq (UInt64 LE), length (UInt64 LE), bytes.
struct BulkSlot {
  port @0 :UInt16;
  token @1 :Data;
  length @2 :UInt64;             # 0: not used; the batch is in the message
}

# Implemented by the client. The daemon calls push with the newest batch of a stream,
# at most `window` calls in flight and at most `maxRate` per second; a push that is
# skipped (the subscriber was slower than the stream) shows as a gap in `seq`.
interface BatchSink {
  push @0 (seq :UInt64, batch :Data, shared :SharedSlot, bulk :BulkSlot);
  # batch: one Arrow IPC stream, labd.records layout; empty when `shared` or `bulk` holds it.
  # A client that cannot map `shared.path` fails the push with "labd:lane-unavailable: ..."
  # and gets the following batches in the message; likewise "labd:bulk-unavailable: ..."
  # for a bulk connection it cannot read.
}

interface StateWatcher {
  changed @0 (change :StateChange);
}

interface Subscription {
  cancel @0 ();
  stats @1 () -> (sent :UInt64, skipped :UInt64);
  # skipped: batches never pushed (slower than the stream, or over its byte budget).
  # Fails with "labd:subscriber-dropped: ..." once the daemon dropped the subscriber for
  # answering no push for 30 s (it stopped reading); the message says what it held.
}

# ---------------------------------------------------------------- sharing

struct Range {
  low @0 :Float64;
  high @1 :Float64;
}

# What a derived capability may still do. Restrictions only ever narrow: deriving from an
# already restricted instrument intersects the ranges and keeps the earlier expiry.
struct Restriction {
  readOnly @0 :Bool;             # only reading/query methods
  expiresIn @1 :Float64;         # seconds from now, positive and finite; 0: never
                                 # (negative, NaN or infinite: refused as invalid-request)
  position @2 :Range;            # Movable targets; null: unrestricted
  voltage @3 :Range;             # VoltageSource set points; null: unrestricted
  current @4 :Range;             # VoltageSource current limits; null: unrestricted
  parameters @5 :List(ParameterLimit);   # per parameter; absent: as the parent allows
}

# What a restricted holder may do with one parameter. Like the ranges above, it only
# narrows: the daemon checks it in the instrument's owner task, atomically with the set.
struct ParameterLimit {
  name @0 :Text;
  readOnly @1 :Bool;             # the holder may read it, never set it
  range @2 :Range;               # numbers: the values it may set; null: any
  choices @3 :List(Text);        # choices: those it may set; empty: any
}

interface Revoker {
  revoke @0 ();
}

struct ShareInfo {
  token @0 :Text;
  instrument @1 :Text;
  readOnly @2 :Bool;
  expiresAt @3 :Float64;         # 0: never
  revoked @4 :Bool;
}

# ---------------------------------------------------------------- the lab

interface Instrument {
  info @0 () -> (info :InstrumentInfo);
  capabilities @1 () -> (capabilities :Capabilities);
  restrict @2 (restriction :Restriction) -> (instrument :Instrument);
  share @3 (restriction :Restriction) -> (token :Text, revoker :Revoker);
  subscribe @4 (stream :Text, sink :BatchSink, maxRate :Float64, window :UInt32,
                sharedMemory :Bool, bulk :Bool) -> (subscription :Subscription);
      # stream: "position" or "stage/position"; sharedMemory, bulk: see Lab.subscribe
  openRun @5 (name :Text, metadata :List(Argument)) -> (run :RunHandle);
      # a run recorded as this holder's (a share's holder: "share <instrument> <token prefix>")
}

interface Lab {
  instruments @0 () -> (instruments :List(InstrumentInfo));
  instrument @1 (name :Text) -> (instrument :Instrument);
  watchStates @2 (watcher :StateWatcher) -> (subscription :Subscription);
  streams @3 () -> (streams :List(StreamInfo));
  subscribe @4 (stream :Text, sink :BatchSink, maxRate :Float64, window :UInt32,
                sharedMemory :Bool, bulk :Bool) -> (subscription :Subscription);
      # sharedMemory: the client runs on the daemon's machine as the daemon's user and
      # can map /dev/shm files; honoured on the unix socket only. Big batches then come
      # as a SharedSlot (two copies in all instead of six).
      # bulk: the client can open a second connection to the daemon; honoured on TCP/TLS
      # only. Big batches then come on it (see BulkSlot), outside the message.
  shares @5 () -> (shares :List(ShareInfo));
  revoke @6 (token :Text);
  scripts @7 () -> (engine :ScriptEngine);   # only the full Lab: a script reaches any instrument
  replay @8 (stream :Text, start :Float64, end :Float64) -> (cursor :ReplayCursor, arrowSchema :Data);
      # every batch of `stream` whose timestamps overlap [start, end] (seconds since the
      # epoch), from the ring and the persisted files, each once and in order; `arrowSchema`:
      # the stream's Arrow schema (IPC), so an empty range still says what it would hold
  dataInfo @9 () -> (info :DataInfo);   # where the rings and files are, persistence health
  openRun @10 (name :Text, metadata :List(Argument)) -> (run :RunHandle);
      # a run (docs/runs.md): its record is written at once, with outcome "running"
  runs @11 () -> (runs :List(RunSummary));              # every run the daemon has recorded
  getRun @12 (id :Text) -> (record :Text);              # one run's whole record, JSON
  replayRun @13 (id :Text, stream :Text) -> (cursor :ReplayCursor, arrowSchema :Data);
      # the batches of `stream` the run covers (its seq range), as Lab.replay gives them
}

interface Bootstrap {
  unlock @0 (token :Text) -> (lab :Lab);                  # the daemon's token file
  redeem @1 (shareToken :Text) -> (instrument :Instrument);
  version @2 () -> (protocol :UInt32, daemon :Text);
}

# ---------------------------------------------------------------- scripts (WebAssembly)
#
# A failed run raises "labd:script-failed:<code>: <message>" from wait/results, where
# <code> is labd.scripting.ScriptFailed.code (out-of-fuel, deadline, cancelled, denied, ...).

struct ScriptInfo {
  name @0 :Text;
  version @1 :UInt32;
  sha256 @2 :Text;               # of the WebAssembly binary
  size @3 :UInt64;               # bytes of the WebAssembly binary
  uploadedAt @4 :Float64;
  usesWasi @5 :Bool;
}

struct Argument {
  name @0 :Text;
  value @1 :Text;
}

struct RunRequest {
  name @0 :Text;
  version @1 :UInt32;            # 0: the newest
  args @2 :List(Argument);
  grants @3 :List(Text);         # "stage:Movable", "meter" (all its capabilities), "*"
  fuel @4 :UInt64;               # limits; 0: the daemon's default
  deadline @5 :Float64;          # seconds
  memory @6 :UInt64;             # bytes of linear memory
}

struct ScriptResult {
  name @0 :Text;
  value @1 :Float64;
  timestamp @2 :Float64;
}

struct RunInfo {
  id @0 :UInt64;
  name @1 :Text;
  version @2 :UInt32;
  state @3 :Text;                # queued | running | paused | succeeded | failed | cancelled
  errorCode @4 :Text;            # empty unless failed/cancelled
  errorMessage @5 :Text;
  fuelUsed @6 :UInt64;
  startedAt @7 :Float64;         # 0: not yet
  endedAt @8 :Float64;           # 0: not yet
  grants @9 :Text;               # as the daemon understood them, e.g. "meter:*; stage:Movable"
}

struct LogEntry {
  timestamp @0 :Float64;
  level @1 :Text;                # debug | info | warn | error
  text @2 :Text;
}

# Implemented by the client. The daemon sends a run's log lines in batches, one call in
# flight; a slow client gets bigger batches, never slows the run. `end` follows the last.
interface LogSink {
  lines @0 (lines :List(LogEntry));
  end @1 (info :RunInfo);
}

interface ScriptRun {
  info @0 () -> (info :RunInfo);
  wait @1 () -> (info :RunInfo, results :List(ScriptResult));   # cancelling the call leaves the run
  cancel @2 ();
  pause @3 ();                   # at the script's next checkpoint
  resume @4 ();
  followLog @5 (sink :LogSink) -> (subscription :Subscription);   # kept lines, then live ones
  results @6 () -> (results :List(ScriptResult));                  # every result so far
  table @7 () -> (arrow :Data);   # result_row's rows so far: an Arrow IPC stream, a column per name
}

interface ScriptEngine {
  upload @0 (name :Text, module :Data) -> (info :ScriptInfo);   # WebAssembly binary or WAT text
  scripts @1 () -> (scripts :List(ScriptInfo));                 # every version of every name
  run @2 (request :RunRequest) -> (run :ScriptRun);
  runs @3 () -> (runs :List(RunInfo));                          # running and recently finished
  getRun @4 (id :UInt64) -> (run :ScriptRun);
}

# ---------------------------------------------------------------- recorded data (time travel)

# A replay, pulled chunk by chunk: `next` returns whole batches in order, in a chunk of at
# most `maxBytes` (but at least one batch, however big), so no message grows beyond what
# the client asked for; `done` comes with the last chunk. The daemon raises `maxBytes` to
# at least 64 KiB (0 included) and lowers it to at most 64 MiB, whatever is asked.
# Dropping the cursor ends the replay.
interface ReplayCursor {
  next @0 (maxBytes :UInt64) -> (chunk :Data, done :Bool);
  # chunk: one Arrow IPC stream of the stream's schema; every batch carries its number
  # as custom metadata "labd.seq". Empty when there is nothing (more). Bytes after the
  # stream's end-of-stream marker are to be ignored (a chunk cut short on the daemon).
}

struct RingInfo {
  stream @0 :Text;
  kind @1 :Text;
  path @2 :Text;                 # the /dev/shm file; labd.rings.attach(stream, daemon=...) maps it
  capacity @3 :UInt64;           # batches the ring holds
  writeSeq @4 :UInt64;           # newest batch in it
  retention @5 :Float64;         # seconds it was sized for
}

struct PersistInfo {
  stream @0 :Text;
  directory @1 :Text;
  file @2 :Text;                 # being written now; empty: none open
  batches @3 :UInt64;
  bytes @4 :UInt64;
  lost @5 :UInt64;               # in the ring but never persisted (disk error, overwritten first)
  lastSeq @6 :UInt64;
  error @7 :Text;                # the current disk problem; empty while writing works
}

struct DataInfo {
  host @0 :Text;                 # the daemon's host name: its rings are readable only there
  ringRoot @1 :Text;
  daemonId @2 :Text;
  rings @3 :List(RingInfo);
  dataDir @4 :Text;              # empty: nothing is persisted
  runId @5 :Text;
  persisted @6 :List(PersistInfo);
  diskQuota @7 :UInt64;          # what the data directory may hold, in bytes (0: not persisting)
  diskUsed @8 :UInt64;           # what it held at the last retention sweep
}

# ---------------------------------------------------------------- runs (docs/runs.md)

struct RunSummary {
  id @0 :Text;                   # "<UTC yyyymmddThhmmss>-<8 hex>"
  name @1 :Text;
  who @2 :Text;                  # "lab" or "share <instrument> <token prefix>"
  startedAt @3 :Float64;         # seconds since the epoch
  endedAt @4 :Float64;           # 0: still running (or interrupted before it could end)
  outcome @5 :Text;              # running | succeeded | failed | cancelled | disconnected | interrupted
  script @6 :Text;               # "scan v2"; empty: a run a client opened
}

# A run a client opened. Closed by `close`, or as "disconnected" when its connection ends.
interface RunHandle {
  id @0 () -> (id :Text);
  close @1 (outcome :Text, error :Text);   # outcome: succeeded | failed; error: why it failed
}
