// Which pushed config replaces the one running (shared/config.ts `supersedes`): newer in version and not older in
// epoch, so a deposed coordinator leader's pushes (an older epoch) are ignored even when their version is higher.
import t from 'tap';
import { supersedes } from '../shared/config.js';
import { newCluster } from '../coordinator/cluster.js';

const base = newCluster();
const at = (version: number, epoch?: number) => ({ ...base, version, ...(epoch === undefined ? {} : { epoch }) });

t.ok(supersedes(at(2, 5), undefined), 'anything replaces nothing');
t.ok(supersedes(at(3, 5), at(2, 5)), 'a newer version of the same leadership');
t.ok(supersedes(at(3, 9), at(2, 5)), 'the next leader\'s first config');
t.notOk(supersedes(at(2, 5), at(2, 5)), 'the same version again');
t.notOk(supersedes(at(1, 9), at(2, 5)), 'an older version, whatever its epoch');
t.notOk(supersedes(at(7, 4), at(6, 5)), "a deposed leader's push: higher version, older epoch");
t.ok(supersedes(at(3, 1), at(2)), 'a config saved before epochs counts as epoch 0');
t.notOk(supersedes(at(3), at(2, 1)), 'and so is older than any epoch');
