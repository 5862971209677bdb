//! The dashboard's subscription to `GET /api/stream`: each change re-reads
//! the dashboard (so what it shows always comes from one consistent read).
//! The browser reconnects by itself after a drop; meanwhile the timer
//! refresh carries on. Browser only.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;

/// Closes the stream when dropped.
pub struct Connection {
    source: web_sys::EventSource,
    _handlers: [Closure<dyn FnMut(web_sys::Event)>; 3],
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.source.close();
    }
}

pub fn open(url: &str, tick: RwSignal<u32>, live: RwSignal<bool>) -> Option<Connection> {
    let source = web_sys::EventSource::new(url).ok()?;
    // The stream's first event is the state the page just rendered;
    // after a reconnect it may be news, so only the very first is skipped.
    let mut first = true;
    let on_change = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
        if std::mem::take(&mut first) && e.type_() == "usage" {
            return;
        }
        tick.update(|t| *t += 1);
    });
    let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| live.set(true));
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| live.set(false));
    for kind in ["usage", "alert", "subscription"] {
        source.add_event_listener_with_callback(kind, on_change.as_ref().unchecked_ref()).ok()?;
    }
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    Some(Connection { source, _handlers: [on_change, on_open, on_error] })
}
