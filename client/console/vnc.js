// A VM's screen on the env page (dist/console/vnc.js, an ES module: noVNC 1.7 uses top-level
// await): noVNC's RFB client over the console's own websocket /ws/vnc/<jname>, which the agent
// relays to the VM's VNC server on 127.0.0.1. A VNC password is asked in the page's form and
// handed to RFB (never in a URL). window.berthRfb and #screen's data-state are for the tests.
import RFB from '@novnc/novnc';

function openScreen(btn) {
  const box = document.getElementById('screen');
  const status = document.getElementById('screen-status');
  const form = document.getElementById('screen-password');
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  box.dataset.state = 'connecting'; // shows the box (hidden until then) before noVNC measures it
  const rfb = new RFB(box, `${proto}//${location.host}${btn.dataset.ws}`, { shared: true });
  rfb.scaleViewport = true;
  window.berthRfb = rfb;
  status.textContent = 'connecting';
  rfb.addEventListener('connect', () => { box.dataset.state = 'connected'; status.textContent = 'connected'; form.hidden = true; });
  rfb.addEventListener('disconnect', (e) => { box.dataset.state = e.detail.clean ? 'closed' : 'failed'; status.textContent = e.detail.clean ? 'closed' : 'connection failed'; btn.disabled = false; });
  rfb.addEventListener('securityfailure', (e) => { status.textContent = `refused: ${e.detail.reason || e.detail.status}`; });
  rfb.addEventListener('credentialsrequired', () => {
    form.hidden = false;
    status.textContent = 'the VM asks for its VNC password';
    form.querySelector('input').focus();
  });
  form.onsubmit = (e) => {
    e.preventDefault();
    const input = form.querySelector('input');
    rfb.sendCredentials({ password: input.value });
    input.value = '';
    form.hidden = true;
  };
  btn.disabled = true;
}

const btn = document.getElementById('screen-open');
if (btn) btn.addEventListener('click', () => openScreen(btn));
