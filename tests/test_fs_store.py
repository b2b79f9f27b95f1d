"""FilesystemStore follows LDK's KVStore contract, its key rules, and writes atomically."""

from __future__ import annotations

import os

import pytest

from ldkkit import persist
from ldkkit.fs_store import FilesystemStore
from ldkkit.persist import KVStoreError, NotFound


@pytest.fixture
def store(tmp_path):
    return FilesystemStore(tmp_path)


def test_write_read_list_remove(store, tmp_path):
    store.write("", "", "manager", b"cm")
    store.write("monitors", "", "abcd_0", b"mon")
    store.write("monitor_updates", "abcd_0", "1", b"upd")
    assert store.read("", "", "manager") == b"cm"
    assert (tmp_path / "monitors" / "abcd_0").read_bytes() == b"mon"
    assert store.list("", "") == ["manager"]
    assert store.list("monitor_updates", "abcd_0") == ["1"]
    store.remove("", "", "manager", lazy=False)
    store.remove("", "", "manager", lazy=True)  # removing what is gone is fine, as in LDK
    assert store.list("", "") == []
    assert store.list("nothing_here", "") == []


def test_overwrite_replaces_the_value(store):
    store.write("", "", "scorer", b"old")
    store.write("", "", "scorer", b"new")
    assert store.read("", "", "scorer") == b"new"


def test_missing_key_is_not_found(store):
    with pytest.raises(NotFound, match="Nothing is stored under 'manager'") as info:
        store.read("", "", "manager")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    "primary, secondary, key, rule",
    [
        ("", "", "../../etc/passwd", "may use only the characters a-z, A-Z, 0-9, '_' and '-'"),
        ("", "", "a" * 121, "at most 120 characters"),
        ("..", "", "key", "may use only the characters"),
        ("", "", "", "key may not be empty"),
        ("", "secondary", "key", "primary namespace may not be empty if a non-empty secondary namespace is given"),
        ("ns", "", "has space", "must be valid"),
        ("monitors", "", None, "key may not be empty"),  # else the write would replace the folder with a file
    ],
)
def test_ldks_namespace_and_key_rules_are_enforced(store, tmp_path, primary, secondary, key, rule):
    for call in (lambda: store.write(primary, secondary, key, b"x"), lambda: store.read(primary, secondary, key),
                 lambda: store.remove(primary, secondary, key)):
        with pytest.raises(KVStoreError, match=rule):
            call()
    assert list(tmp_path.iterdir()) == []


def test_longest_allowed_key_works(store):
    store.write("", "", "k" * 120, b"x")
    assert store.read("", "", "k" * 120) == b"x"


def test_a_crash_mid_write_leaves_the_old_value_and_no_stray_file(store, tmp_path, monkeypatch):
    store.write("", "", "manager", b"old")

    def crash(*args):
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        store.write("", "", "manager", b"new")
    monkeypatch.undo()
    assert store.read("", "", "manager") == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manager"]


def test_temporary_files_are_never_listed(store, tmp_path):
    store.write("", "", "manager", b"x")
    (tmp_path / "manager.1234.tmp").write_bytes(b"half")
    assert store.list("", "") == ["manager"]


def test_write_needs_bytes(store):
    with pytest.raises(TypeError, match="call .encode\\(\\) first"):
        store.write("", "", "manager", "text")  # type: ignore[arg-type]


def test_persistence_keys_are_ldks():
    assert persist.CHANNEL_MANAGER_PERSISTENCE_KEY == "manager"
    assert persist.NETWORK_GRAPH_PERSISTENCE_KEY == "network_graph"
    assert persist.SCORER_PERSISTENCE_KEY == "scorer"
    assert persist.OUTPUT_SWEEPER_PERSISTENCE_KEY == "output_sweeper"
    assert persist.CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE == "monitors"
    assert persist.KVSTORE_NAMESPACE_KEY_MAX_LEN == 120


def test_interrupted_writes_are_cleared_when_the_store_starts(tmp_path):
    from ldkkit.fs_store import FilesystemStore

    (tmp_path / "monitors").mkdir()
    (tmp_path / "manager.3f2a.tmp").write_bytes(b"half")
    (tmp_path / "monitors" / "abc_0.77aa.tmp").write_bytes(b"half")
    store = FilesystemStore(tmp_path)
    assert not list(tmp_path.rglob("*.tmp")) and store.list("", "") == []


def test_a_worlds_own_storage_folders_go_with_it():
    import gc

    from ldkkit.sim.world import World

    world = World(seed=0)
    folder = world.add_node("alice").fs_store.get_data_dir()
    assert folder.is_dir()
    world.close()
    del world
    gc.collect()
    assert not folder.exists()


def test_only_the_worlds_scratch_folders_skip_fsync(tmp_path, monkeypatch):
    """A folder you chose is written as LDK writes (file and folder fsynced); the world's own scratch folders,
    deleted with it, skip fsync: no simulated node loses power."""
    from ldkkit.sim.world import World

    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    with World(seed=0) as world:
        scratch = world.add_node("alice").fs_store
        chosen = world.add_node("bob", storage_dir=str(tmp_path)).fs_store
        assert (scratch.durable, chosen.durable) == (False, True)
        synced.clear()
        scratch.write("", "", "key", b"x")
        assert synced == []
        chosen.write("", "", "key", b"x")
        assert len(synced) == 2  # the file, then its folder
        assert scratch.read("", "", "key") == chosen.read("", "", "key") == b"x"


def _watch_durability(monkeypatch):
    """Record, in order, every fsync (of a file: its size; of a folder: its inode) and every rename."""
    import stat

    from ldkkit import fs_store

    done: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        done.append(("fsync folder", info.st_ino) if stat.S_ISDIR(info.st_mode) else ("fsync file", info.st_size))
        real_fsync(fd)

    def replace(src, dst):
        done.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(fs_store.os, "fsync", fsync)
    monkeypatch.setattr(fs_store.os, "replace", replace)
    return done


def test_a_write_is_flushed_to_disk_then_renamed_then_its_folder_flushed(store, tmp_path, monkeypatch):
    """LDK's FilesystemStore fsyncs the temporary file before renaming it, then the folder, so the new value
    survives a power cut once write returns."""
    done = _watch_durability(monkeypatch)
    store.write("monitors", "", "abcd_0", b"monitor bytes")
    folder = (tmp_path / "monitors").stat().st_ino
    assert done == [("fsync file", len(b"monitor bytes")), ("rename", "abcd_0"), ("fsync folder", folder)]


def test_a_removal_is_flushed_to_disk_unless_lazy(store, tmp_path, monkeypatch):
    store.write("", "", "scorer", b"x")
    store.write("", "", "manager", b"y")
    done = _watch_durability(monkeypatch)
    store.remove("", "", "scorer")  # durable unless told otherwise
    assert done == [("fsync folder", tmp_path.stat().st_ino)]
    done.clear()
    store.remove("", "", "manager", lazy=True)
    assert done == [] and store.list("", "") == []


@pytest.mark.parametrize("operation", ["read", "write", "remove"])
def test_a_broken_rule_names_the_operation_and_the_place(store, operation):
    call = {"read": lambda: store.read("monitors", "", "a.b"), "write": lambda: store.write("monitors", "", "a.b", b""),
            "remove": lambda: store.remove("monitors", "", "a.b")}[operation]
    with pytest.raises(KVStoreError) as info:
        call()
    assert str(info.value).startswith(f"Failed to {operation} monitors//a.b: ")


def test_each_namespace_is_a_folder_of_its_own(store, tmp_path):
    """(primary, secondary, key) is ``primary/secondary/key`` on disk: the same key elsewhere is another value."""
    store.write("monitor_updates", "abcd_0", "1", b"update")
    store.write("monitor_updates", "", "1", b"other")
    store.write("", "", "1", b"top")
    assert (tmp_path / "monitor_updates" / "abcd_0" / "1").read_bytes() == b"update"
    assert store.read("monitor_updates", "abcd_0", "1") == b"update"
    with pytest.raises(NotFound, match=r"^Nothing is stored under 'monitor_updates/abcd_0/2' in "):
        store.read("monitor_updates", "abcd_0", "2")
    store.remove("monitor_updates", "abcd_0", "1")
    assert store.list("monitor_updates", "abcd_0") == []
    assert store.read("monitor_updates", "", "1") == b"other" and store.read("", "", "1") == b"top"


def test_write_names_what_it_was_given_instead_of_bytes(store):
    with pytest.raises(TypeError, match=r"^FilesystemStore.write takes bytes, got str; call .encode\(\) first$"):
        store.write("", "", "manager", "text")  # type: ignore[arg-type]


def test_a_store_shows_its_folder(store, tmp_path):
    assert repr(store) == f"FilesystemStore({str(tmp_path)!r})" and store.get_data_dir() == tmp_path


def test_a_store_started_on_the_folder_mid_write_leaves_that_write_alone(store, tmp_path, monkeypatch):
    """A second store on the same folder clears crashed writes' temporary files, never one being written now."""
    from ldkkit import fs_store

    real_fsync = os.fsync

    def start_another_store_meanwhile(fd):
        real_fsync(fd)
        FilesystemStore(tmp_path)

    monkeypatch.setattr(fs_store.os, "fsync", start_another_store_meanwhile)
    store.write("", "", "manager", b"new")
    assert store.read("", "", "manager") == b"new" and not fs_store._IN_FLIGHT


def test_a_write_that_fails_before_its_file_exists_raises_its_own_error(store, monkeypatch):
    from ldkkit import fs_store

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fs_store.os, "open", full)
    with pytest.raises(OSError, match="No space left on device"):
        store.write("", "", "manager", b"x")
    monkeypatch.undo()
    assert not fs_store._IN_FLIGHT and store.list("", "") == [] and not list(store.get_data_dir().iterdir())


@pytest.mark.parametrize("durable", [True, False])
def test_a_write_the_disk_takes_in_pieces_is_written_whole(tmp_path, monkeypatch, durable):
    """``os.write`` may write less than it was given; the rest follows, and the file holds every byte."""
    from ldkkit import fs_store

    real_write = os.write
    monkeypatch.setattr(fs_store.os, "write", lambda fd, data: real_write(fd, bytes(data)[:3]))
    store = FilesystemStore(tmp_path, durable=durable)
    store.write("monitors", "", "abcd_0", bytearray(b"0123456789"))
    monkeypatch.undo()
    assert store.read("monitors", "", "abcd_0") == b"0123456789"


def test_a_namespace_folder_removed_behind_the_stores_back_is_made_again(tmp_path):
    import shutil

    store = FilesystemStore(tmp_path, durable=False)
    store.write("monitors", "", "abcd_0", b"one")
    shutil.rmtree(tmp_path / "monitors")
    store.write("monitors", "", "abcd_0", b"two")
    assert store.read("monitors", "", "abcd_0") == b"two" and store.list("monitors", "") == ["abcd_0"]


def test_a_temporary_file_gone_before_it_is_cleared_is_no_error(tmp_path, monkeypatch):
    """Another store's write may finish (renaming its file away) between the listing and the clearing."""
    listed = [tmp_path / "manager.1a2b3c.tmp"]  # listed, but no longer there
    monkeypatch.setattr(type(tmp_path), "rglob", lambda self, pattern: iter(listed))
    assert FilesystemStore(tmp_path).list("", "") == []


# --- the same KVStore contract in memory (LDK's TestStore), for nodes that never restart ---------------


@pytest.fixture(params=["filesystem", "memory"])
def any_store(request, tmp_path):
    return FilesystemStore(tmp_path) if request.param == "filesystem" else persist.InMemoryStore()


def test_both_stores_keep_each_namespace_apart_and_list_keys_sorted(any_store):
    any_store.write("monitor_updates", "abcd_0", "2", b"two")
    any_store.write("monitor_updates", "abcd_0", "1", bytearray(b"one"))
    any_store.write("monitor_updates", "", "1", b"other")
    any_store.write("monitors", "", "abcd_0", b"monitor")
    assert any_store.list("monitor_updates", "abcd_0") == ["1", "2"]
    assert any_store.list("monitor_updates", "") == ["1"] and any_store.list("", "") == []
    assert any_store.read("monitor_updates", "abcd_0", "1") == b"one"
    assert type(any_store.read("monitor_updates", "abcd_0", "1")) is bytes
    any_store.remove("monitor_updates", "abcd_0", "1", False)
    any_store.remove("monitor_updates", "abcd_0", "9", False)  # nothing there: no error, as in LDK
    assert any_store.list("monitor_updates", "abcd_0") == ["2"] and any_store.read("monitor_updates", "", "1")
    with pytest.raises(NotFound):
        any_store.read("monitor_updates", "abcd_0", "1")


@pytest.mark.parametrize("operation", ["read", "write", "remove", "list"])
def test_both_stores_enforce_ldks_rules_naming_the_operation(any_store, operation):
    calls = {"read": lambda: any_store.read("", "x", "k"), "write": lambda: any_store.write("", "x", "k", b""),
             "remove": lambda: any_store.remove("", "x", "k", False), "list": lambda: any_store.list("", "x")}
    where = "/x" if operation == "list" else "/x/k"
    with pytest.raises(KVStoreError) as info:
        calls[operation]()
    assert str(info.value) == (f"Failed to {operation} {where}: primary namespace may not be empty if a non-empty "
                               "secondary namespace is given.")


def test_the_memory_store_says_where_nothing_is_stored():
    with pytest.raises(NotFound, match=r"^Nothing is stored under monitors//abcd_0$"):
        persist.InMemoryStore().read("monitors", "", "abcd_0")


@pytest.mark.parametrize("operation", ["read", "list"])
def test_a_bad_character_gets_ldks_message_then_the_rule(any_store, operation):
    """LDK's messages (lightning-persister's check_namespace_key_validity), with and without a key."""
    with pytest.raises(KVStoreError) as info:
        any_store.read("mon itors", "", "k") if operation == "read" else any_store.list("mon itors", "")
    what = ("mon itors//k: primary namespace, secondary namespace, and key" if operation == "read"
            else "mon itors/: primary namespace and secondary namespace")
    assert str(info.value) == f"Failed to {operation} {what} must be valid: {persist._RULE}."


def test_names_found_valid_are_kept_but_only_with_a_key(monkeypatch):
    """A name found valid is not checked again (a node writes its manager at every block), but only a whole name
    is kept: a missing key is still refused for what needs one."""
    checked: list[str] = []
    real = persist.is_valid_kvstore_str
    monkeypatch.setattr(persist, "is_valid_kvstore_str", lambda s: checked.append(s) or real(s))
    monkeypatch.setattr(persist, "_VALID_NAMES", set())
    for _ in range(3):
        persist.check_namespace_key_validity("monitors", "", "abcd_0", "write")
    persist.check_namespace_key_validity("monitors", "", None, "list")
    assert checked == ["monitors", "", "abcd_0", "monitors", ""]  # once each
    with pytest.raises(KVStoreError, match="key may not be empty"):
        persist.check_namespace_key_validity("monitors", "", None, "write")
    with pytest.raises(KVStoreError, match="must be valid"):
        persist.check_namespace_key_validity("monitors", "", "abcd 0", "write")


def test_a_scratch_store_skips_rewriting_what_the_file_already_holds(tmp_path, monkeypatch):
    from ldkkit import fs_store

    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(fs_store.os, "open", lambda path, *args: opened.append(path) or real_open(path, *args))
    store = FilesystemStore(tmp_path, durable=False)
    store.write("", "", "scorer", b"same")
    store.write("", "", "scorer", b"same")
    assert opened == [str(tmp_path / "scorer")]  # written once: the same bytes were already there
    store.write("", "", "scorer", b"new")
    assert (tmp_path / "scorer").read_bytes() == b"new" and len(opened) == 2


def test_a_scratch_store_rewrites_in_place_leaving_no_tail_and_no_temporary_file(tmp_path):
    """Nothing crashes mid-write in a simulation: the file is written over (the same inode), cut to the new length."""
    store = FilesystemStore(tmp_path, durable=False)
    store.write("monitors", "", "abcd_0", b"a longer first value")
    first = (tmp_path / "monitors" / "abcd_0").stat().st_ino
    store.write("monitors", "", "abcd_0", b"short")
    path = tmp_path / "monitors" / "abcd_0"
    assert path.read_bytes() == b"short" and store.read("monitors", "", "abcd_0") == b"short"
    assert path.stat().st_ino == first and sorted(p.name for p in tmp_path.rglob("*")) == ["abcd_0", "monitors"]


def test_a_scratch_store_cuts_the_file_only_when_the_value_is_shorter(tmp_path, monkeypatch):
    """A value as long as the last, or longer (a manager at every block), is written with no truncation call."""
    from ldkkit import fs_store

    cuts: list[int] = []
    real = os.ftruncate
    monkeypatch.setattr(fs_store.os, "ftruncate", lambda fd, n: cuts.append(n) or real(fd, n))
    store = FilesystemStore(tmp_path, durable=False)
    for value in (b"first", b"again", b"longer value", b"short"):
        store.write("", "", "manager", value)
        assert (tmp_path / "manager").read_bytes() == value
    assert cuts == [5]
    (tmp_path / "manager").write_bytes(b"a longer value from outside")
    store.write("", "", "manager", b"short")
    assert (tmp_path / "manager").read_bytes() == b"short" and cuts == [5, 5]


def test_a_scratch_store_read_never_sees_half_a_write(tmp_path, monkeypatch):
    """Its reads wait for a write in another thread to finish: they get the old value or the new, whole."""
    import threading

    from ldkkit import fs_store

    store = FilesystemStore(tmp_path, durable=False)
    store.write("", "", "manager", b"old value")
    halfway, go_on = threading.Event(), threading.Event()
    real_write = os.write

    def slow_write(fd, data):
        written = real_write(fd, bytes(data)[:3])
        halfway.set()
        go_on.wait(5)
        return written

    monkeypatch.setattr(fs_store.os, "write", slow_write)
    writer = threading.Thread(target=store.write, args=("", "", "manager", b"new value"))
    writer.start()
    halfway.wait(5)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(store.read("", "", "manager")))
    reader.start()
    reader.join(0.2)
    assert not read  # still waiting for the write
    go_on.set()
    writer.join(5)
    reader.join(5)
    assert read == [b"new value"]


@pytest.mark.parametrize("tamper", ["overwrite", "replace", "delete"])
def test_a_scratch_store_rewrites_a_file_changed_behind_its_back(tmp_path, tamper):
    store = FilesystemStore(tmp_path, durable=False)
    store.write("", "", "manager", b"state")
    path = tmp_path / "manager"
    if tamper == "overwrite":
        path.write_bytes(b"junk!!")
    elif tamper == "replace":
        (tmp_path / "other").write_bytes(b"state")
        os.replace(tmp_path / "other", path)
        path.write_bytes(b"torn")
    else:
        path.unlink()
    store.write("", "", "manager", b"state")
    assert store.read("", "", "manager") == b"state"


def test_a_durable_store_writes_every_time(tmp_path):
    store = FilesystemStore(tmp_path)
    store.write("", "", "scorer", b"same")
    first = (tmp_path / "scorer").stat().st_ino
    store.write("", "", "scorer", b"same")
    assert (tmp_path / "scorer").stat().st_ino != first
